// Command spclient is the smallest Docker API client: one HTTP request over
// the Unix socket in DOCKER_HOST. docker-compose.test.yml mounts it (built
// static, CGO_ENABLED=0) into a busybox client container, whose busybox can
// speak neither HTTP over a Unix socket nor the Docker API.
//
//	spclient METHOD PATH [BODY]
//
// It prints the status code on the first line and the response body after
// it, and exits 0 for a 2xx status, 1 for any other, 2 when the request
// could not be made.
package main

import (
	"context"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"strings"
)

func main() {
	if len(os.Args) < 3 || len(os.Args) > 4 {
		fmt.Fprintln(os.Stderr, "usage: spclient METHOD PATH [BODY]")
		os.Exit(2)
	}
	host := os.Getenv("DOCKER_HOST")
	sock, ok := strings.CutPrefix(host, "unix://")
	if !ok {
		fmt.Fprintf(os.Stderr, "spclient: DOCKER_HOST=%q: want unix:///path/to/socket\n", host)
		os.Exit(2)
	}
	var body io.Reader
	if len(os.Args) == 4 {
		body = strings.NewReader(os.Args[3])
	}
	req, err := http.NewRequest(os.Args[1], "http://docker"+os.Args[2], body)
	if err != nil {
		fmt.Fprintln(os.Stderr, "spclient:", err)
		os.Exit(2)
	}
	if body != nil {
		req.Header.Set("Content-Type", "application/json")
	}
	client := &http.Client{Transport: &http.Transport{DialContext: func(ctx context.Context, _, _ string) (net.Conn, error) {
		var d net.Dialer
		return d.DialContext(ctx, "unix", sock)
	}}}
	resp, err := client.Do(req)
	if err != nil {
		fmt.Fprintln(os.Stderr, "spclient:", err)
		os.Exit(2)
	}
	defer resp.Body.Close()
	fmt.Println(resp.StatusCode)
	if _, err := io.Copy(os.Stdout, resp.Body); err != nil {
		fmt.Fprintln(os.Stderr, "spclient: reading the response:", err)
		os.Exit(2)
	}
	if resp.StatusCode/100 != 2 {
		os.Exit(1)
	}
}
