package main

import (
	"os"
	"testing"

	"github.com/batonhq/baton/desired"
)

// asBaton makes the test binary run as baton: tests start it as a separate
// process (a server or an agent on a host played by a network namespace).
const asBaton = "BATON_TEST_AS_BATON"

func TestMain(m *testing.M) {
	if os.Getenv(asBaton) == "1" {
		main()
		os.Exit(0)
	}
	desired.ServeChild()
	os.Exit(m.Run())
}
