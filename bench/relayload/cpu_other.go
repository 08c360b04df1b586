//go:build !unix

package main

import "time"

// selfCPU is not measured here: the generator's CPU figure reads 0.
func selfCPU() time.Duration { return 0 }
