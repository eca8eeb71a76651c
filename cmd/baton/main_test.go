package main

import (
	"fmt"
	"io"
	"net/http"
	"os"
	"testing"
	"time"

	"github.com/batonhq/baton/desired"
)

// asBaton makes the test binary run as baton: tests start it as a separate
// process (a server or an agent on a host played by a network namespace).
const asBaton = "BATON_TEST_AS_BATON"

// asFetch makes the test binary fetch the URL it names and print the
// body: run inside a pod's network namespace, it is that pod's client.
const asFetch = "BATON_TEST_FETCH"

func TestMain(m *testing.M) {
	if os.Getenv(asBaton) == "1" {
		main()
		os.Exit(0)
	}
	if u := os.Getenv(asFetch); u != "" {
		c := &http.Client{Timeout: 3 * time.Second}
		resp, err := c.Get(u)
		if err != nil {
			fmt.Fprintln(os.Stderr, err)
			os.Exit(1)
		}
		_, _ = io.Copy(os.Stdout, resp.Body)
		os.Exit(0)
	}
	desired.ServeChild()
	os.Exit(m.Run())
}
