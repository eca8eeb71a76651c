package desired

import (
	"os"
	"testing"

	"github.com/batonhq/baton/internal/quickexit"
)

func TestMain(m *testing.M) {
	quickexit.Set()
	ServeChild()
	os.Exit(m.Run())
}
