package main

import (
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"testing"
	"time"

	"github.com/miekg/dns"

	"github.com/batonhq/baton/desired"
	"github.com/batonhq/baton/internal/quickexit"
)

// asBaton makes the test binary run as baton: tests start it as a separate
// process (a server or an agent on a host played by a network namespace).
const asBaton = "BATON_TEST_AS_BATON"

// asLookup makes the test binary look a name up as a pod does: with the
// resolv.conf named by asLookupResolv (its nameserver, search list and
// ndots), over UDP, printing the first address.
const (
	asLookup       = "BATON_TEST_LOOKUP"
	asLookupResolv = "BATON_TEST_RESOLV"
)

func lookup(name, resolv string) (string, error) {
	cfg, err := dns.ClientConfigFromFile(resolv)
	if err != nil {
		return "", err
	}
	c := &dns.Client{Timeout: 2 * time.Second}
	var last error = fmt.Errorf("%s: no answer", name)
	for _, fq := range cfg.NameList(name) {
		m := new(dns.Msg)
		m.SetQuestion(fq, dns.TypeA)
		r, _, err := c.Exchange(m, net.JoinHostPort(cfg.Servers[0], cfg.Port))
		if err != nil {
			last = err
			continue
		}
		for _, a := range r.Answer {
			if rec, ok := a.(*dns.A); ok {
				return rec.A.String(), nil
			}
		}
	}
	return "", last
}

// asFetch makes the test binary fetch the URL it names and print the
// body: run inside a pod's network namespace, it is that pod's client.
const asFetch = "BATON_TEST_FETCH"

func TestMain(m *testing.M) {
	quickexit.Set()
	if os.Getenv(asBaton) == "1" {
		main()
		os.Exit(0)
	}
	if name := os.Getenv(asLookup); name != "" {
		ip, err := lookup(name, os.Getenv(asLookupResolv))
		if err != nil {
			fmt.Fprintln(os.Stderr, err)
			os.Exit(1)
		}
		fmt.Println(ip)
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
