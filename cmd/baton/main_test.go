package main

import (
	"os"
	"testing"

	"github.com/batonhq/baton/desired"
)

func TestMain(m *testing.M) {
	desired.ServeChild()
	os.Exit(m.Run())
}
