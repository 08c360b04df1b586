// Command signinstorm is an open-loop load generator for sign-in
// storms: every client reconnecting after an outage. It paces new
// clients at -rate per second, whatever the server's answers (a slow
// server is seen as latency and failures, not as a slower generator);
// each client opens a TLS connection to the server's SIP listener,
// REGISTERs, answers the Digest SHA-256 challenge (RFC 7616) and keeps
// its connection open, idle, until every client has signed in. It then
// reports sign-ins per second, latency percentiles (from each client's
// scheduled start, so queueing counts) and, with -pid and -metrics, the
// server's resident memory and Go heap before and after, per idle
// signed-in connection.
//
// It writes the directory of users the server needs with -directory
// (users storm00000…, password "pw-" and the name), to put in the
// server's data directory before its first start. bench/signinstorm.sh
// runs the whole measurement.
package main

import (
	"bufio"
	"bytes"
	"crypto/rand"
	"crypto/sha256"
	"crypto/tls"
	"crypto/x509"
	"encoding/hex"
	"flag"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/parleyuc/parley/auth"
	"github.com/parleyuc/parley/internal/siptest"
)

const domain = "example.test"

var settle *time.Duration

func main() {
	addr := flag.String("addr", "127.0.0.1:5061", "the server's SIP over TLS `address`")
	caFile := flag.String("ca", "parley-data/ca/ca.crt", "the CA `file` the server's certificate chains to")
	clients := flag.Int("clients", 5000, "how many clients sign in")
	rate := flag.Float64("rate", 500, "new clients per `second`, paced (open loop)")
	pid := flag.Int("pid", 0, "the server's `process` ID, for its resident memory")
	metrics := flag.String("metrics", "", "the server's /metrics `URL`, for its Go heap")
	settle = flag.Duration("settle", 2*time.Second, "how long the connections stay idle before the server's memory is read (over 2 minutes lets the runtime's periodic GC run)")
	directory := flag.String("directory", "", "write a directory `file` of -clients users and exit")
	flag.Parse()
	if *directory != "" {
		if err := writeDirectory(*directory, *clients); err != nil {
			fmt.Fprintln(os.Stderr, "signinstorm:", err)
			os.Exit(1)
		}
		return
	}
	if err := storm(*addr, *caFile, *clients, *rate, *pid, *metrics); err != nil {
		fmt.Fprintln(os.Stderr, "signinstorm:", err)
		os.Exit(1)
	}
}

func userName(i int) string { return fmt.Sprintf("storm%05d", i) }

func hexSHA256(s string) string {
	sum := sha256.Sum256([]byte(s))
	return hex.EncodeToString(sum[:])
}

// writeDirectory writes n users with their Digest HA1 only (no PBKDF2
// hash: the storm signs in with Digest, and 600,000 rounds each would
// take minutes to write).
func writeDirectory(path string, n int) error {
	d := auth.NewMemoryDirectory()
	if err := d.PutTenant(auth.Tenant{Domain: domain, Name: "Storm"}); err != nil {
		return err
	}
	for i := range n {
		name := userName(i)
		u := auth.User{URI: "sip:" + name + "@" + domain, DisplayName: name, Enabled: true,
			Credentials: auth.Credentials{HA1SHA256: hexSHA256(name + ":" + domain + ":pw-" + name)}}
		if err := d.PutUser(u); err != nil {
			return err
		}
	}
	return d.Save(path)
}

type result struct {
	latency time.Duration
	err     error
}

func storm(addr, caFile string, n int, rate float64, pid int, metricsURL string) error {
	pem, err := os.ReadFile(caFile)
	if err != nil {
		return err
	}
	roots := x509.NewCertPool()
	if !roots.AppendCertsFromPEM(pem) {
		return fmt.Errorf("%s: no certificate", caFile)
	}
	tlsConf := &tls.Config{RootCAs: roots, ServerName: "localhost", MinVersion: tls.VersionTLS12}
	rssBefore, heapBefore := rss(pid), metric(metricsURL, "go_memstats_heap_inuse_bytes")
	stackBefore, goroutinesBefore := metric(metricsURL, "go_memstats_stack_inuse_bytes"), metric(metricsURL, "go_goroutines")

	results := make([]result, n)
	conns := make([]net.Conn, n)
	var wg sync.WaitGroup
	var inFlight, maxInFlight atomic.Int64
	start := time.Now()
	interval := time.Duration(float64(time.Second) / rate)
	for i := range n {
		at := start.Add(time.Duration(i) * interval)
		time.Sleep(time.Until(at))
		wg.Go(func() {
			for v := inFlight.Add(1); ; {
				if m := maxInFlight.Load(); v <= m || maxInFlight.CompareAndSwap(m, v) {
					break
				}
			}
			defer inFlight.Add(-1)
			conns[i], results[i].err = signIn(addr, tlsConf, i)
			results[i].latency = time.Since(at)
		})
	}
	wg.Wait()
	elapsed := time.Since(start)

	var lat []time.Duration
	failures := map[string]int{}
	for _, r := range results {
		if r.err != nil {
			failures[firstLine(r.err.Error())]++
			continue
		}
		lat = append(lat, r.latency)
	}
	slices.Sort(lat)
	pct := func(p float64) time.Duration {
		if len(lat) == 0 {
			return 0
		}
		return lat[min(len(lat)-1, int(float64(len(lat))*p))]
	}
	fmt.Printf("clients %d offered at %.0f/s: signed in %d in %.2f s (%.0f/s), failed %d, at most %d in flight\n",
		n, rate, len(lat), elapsed.Seconds(), float64(len(lat))/elapsed.Seconds(), n-len(lat), maxInFlight.Load())
	fmt.Printf("latency from scheduled start: p50 %.1f ms, p90 %.1f ms, p99 %.1f ms, max %.1f ms\n",
		ms(pct(0.50)), ms(pct(0.90)), ms(pct(0.99)), ms(pct(1)))
	for why, k := range failures {
		fmt.Printf("failed %d: %s\n", k, why)
	}
	if pid != 0 || metricsURL != "" {
		time.Sleep(*settle) // the server settles: handshake buffers released
		rssAfter, heapAfter := rss(pid), metric(metricsURL, "go_memstats_heap_inuse_bytes")
		stackAfter, goroutinesAfter := metric(metricsURL, "go_memstats_stack_inuse_bytes"), metric(metricsURL, "go_goroutines")
		open := 0
		for _, c := range conns {
			if c != nil {
				open++
			}
		}
		if open > 0 && pid != 0 {
			fmt.Printf("server resident memory: %.1f MB before, %.1f MB with %d idle signed-in connections: %.1f KB each\n",
				float64(rssBefore)/1e6, float64(rssAfter)/1e6, open, float64(rssAfter-rssBefore)/float64(open)/1e3)
		}
		if open > 0 && metricsURL != "" {
			fmt.Printf("server Go heap in use: %.1f MB before, %.1f MB after: %.1f KB per connection\n",
				heapBefore/1e6, heapAfter/1e6, (heapAfter-heapBefore)/float64(open)/1e3)
			fmt.Printf("server goroutine stacks: %.1f MB before, %.1f MB after: %.1f KB per connection; goroutines %.0f before, %.0f after: %.2f per connection\n",
				stackBefore/1e6, stackAfter/1e6, (stackAfter-stackBefore)/float64(open)/1e3,
				goroutinesBefore, goroutinesAfter, (goroutinesAfter-goroutinesBefore)/float64(open))
		}
	}
	for _, c := range conns {
		if c != nil {
			_ = c.Close()
		}
	}
	return nil
}

func ms(d time.Duration) float64 { return float64(d) / float64(time.Millisecond) }

func firstLine(s string) string {
	s, _, _ = strings.Cut(s, "\n")
	return s
}

var challengeParam = regexp.MustCompile(`(\w+)="([^"]*)"`)

// signIn is one client: a TLS connection, a REGISTER, the challenge, the
// REGISTER with credentials. The connection stays open on success.
func signIn(addr string, tlsConf *tls.Config, i int) (net.Conn, error) {
	conn, err := tls.DialWithDialer(&net.Dialer{Timeout: 30 * time.Second}, "tcp", addr, tlsConf)
	if err != nil {
		return nil, err
	}
	_ = conn.SetDeadline(time.Now().Add(60 * time.Second))
	r := bufio.NewReader(conn)
	name := userName(i)
	local := conn.LocalAddr().String()
	register := func(cseq int, authorization string) (string, error) {
		var b bytes.Buffer
		fmt.Fprintf(&b, "REGISTER sip:%s SIP/2.0\r\nVia: SIP/2.0/TLS %s;branch=z9hG4bK-%d-%d;rport\r\nMax-Forwards: 70\r\n", domain, local, i, cseq)
		fmt.Fprintf(&b, "From: <sip:%s@%s>;tag=%d\r\nTo: <sip:%s@%s>\r\nCall-ID: storm-%d\r\nCSeq: %d REGISTER\r\n", name, domain, i, name, domain, i, cseq)
		fmt.Fprintf(&b, "Contact: <sip:%s@%s;transport=tls>\r\nExpires: 3600\r\n", name, local)
		if authorization != "" {
			fmt.Fprintf(&b, "Authorization: %s\r\n", authorization)
		}
		b.WriteString("Content-Length: 0\r\n\r\n")
		if _, err := conn.Write(b.Bytes()); err != nil {
			return "", err
		}
		msg, err := siptest.ReadMessage(r)
		return string(msg), err
	}
	fail := func(err error) (net.Conn, error) { _ = conn.Close(); return nil, err }
	res, err := register(1, "")
	if err != nil {
		return fail(err)
	}
	if !strings.HasPrefix(res, "SIP/2.0 401") {
		return fail(fmt.Errorf("first REGISTER: %s", firstLine(res)))
	}
	var challenge string
	for _, line := range strings.Split(res, "\r\n") {
		if k, v, ok := strings.Cut(line, ":"); ok && strings.EqualFold(k, "WWW-Authenticate") && strings.Contains(v, "SHA-256") {
			challenge = v
		}
	}
	p := map[string]string{}
	for _, m := range challengeParam.FindAllStringSubmatch(challenge, -1) {
		p[m[1]] = m[2]
	}
	cnonce := make([]byte, 8)
	_, _ = io.ReadFull(rand.Reader, cnonce)
	cn := hex.EncodeToString(cnonce)
	uri := "sip:" + domain
	ha1 := hexSHA256(name + ":" + p["realm"] + ":pw-" + name)
	response := hexSHA256(ha1 + ":" + p["nonce"] + ":00000001:" + cn + ":auth:" + hexSHA256("REGISTER:"+uri))
	authz := fmt.Sprintf(`Digest username="%s", realm="%s", nonce="%s", uri="%s", algorithm=SHA-256, qop=auth, nc=00000001, cnonce="%s", response="%s"`,
		name, p["realm"], p["nonce"], uri, cn, response)
	if o, ok := p["opaque"]; ok {
		authz += `, opaque="` + o + `"`
	}
	res, err = register(2, authz)
	if err != nil {
		return fail(err)
	}
	if !strings.HasPrefix(res, "SIP/2.0 200") {
		return fail(fmt.Errorf("REGISTER with credentials: %s", firstLine(res)))
	}
	_ = conn.SetDeadline(time.Time{})
	// Idle from now on; what the server sends (keep-alive answers) is
	// read and dropped so its writes never block.
	go func() { _, _ = io.Copy(io.Discard, r) }()
	return conn, nil
}

// rss is the process's resident set size in bytes (0 without pid).
func rss(pid int) int64 {
	if pid == 0 {
		return 0
	}
	data, err := os.ReadFile("/proc/" + strconv.Itoa(pid) + "/status")
	if err != nil {
		return 0
	}
	for _, line := range strings.Split(string(data), "\n") {
		if v, ok := strings.CutPrefix(line, "VmRSS:"); ok {
			kb, _ := strconv.ParseInt(strings.TrimSpace(strings.TrimSuffix(strings.TrimSpace(v), "kB")), 10, 64)
			return kb * 1024
		}
	}
	return 0
}

// metric is the value of the server's metric name (a gauge without
// labels) from its /metrics at url.
func metric(url, name string) float64 {
	if url == "" {
		return 0
	}
	res, err := http.Get(url)
	if err != nil {
		return 0
	}
	defer res.Body.Close()
	data, _ := io.ReadAll(res.Body)
	for _, line := range strings.Split(string(data), "\n") {
		if v, ok := strings.CutPrefix(line, name+" "); ok {
			f, _ := strconv.ParseFloat(strings.TrimSpace(v), 64)
			return f
		}
	}
	return 0
}
