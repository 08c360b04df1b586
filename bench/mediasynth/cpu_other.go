//go:build !unix

package mediasynth

import "time"

// ProcessCPU is not measured here: the generator's CPU figure reads 0.
func ProcessCPU() time.Duration { return 0 }
