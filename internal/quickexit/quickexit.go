package quickexit

import (
	"os"
	"strings"
)

// Set adds atexit_sleep_ms=0 to GORACE in this process's environment, which
// the children it starts inherit, unless GORACE already sets it. The race
// runtime reads GORACE as a process starts, so this process's own exit is
// unchanged. Call it from TestMain.
func Set() {
	v := os.Getenv("GORACE")
	if strings.Contains(v, "atexit_sleep_ms") {
		return
	}
	_ = os.Setenv("GORACE", strings.TrimSpace(v+" atexit_sleep_ms=0"))
}
