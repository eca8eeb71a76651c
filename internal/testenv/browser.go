package testenv

import (
	"context"
	"os"
	"os/exec"
	"path/filepath"
	"sync"
	"testing"

	"github.com/chromedp/chromedp"
)

// Browser is a headless Chromium of a test's own (Debian's chromium,
// driven by chromedp), with what its pages printed as errors.
type Browser struct {
	Ctx context.Context

	mu     sync.Mutex
	errors []string
}

// Errors are the console errors, uncaught exceptions and browser log
// errors (a refused resource, a Content-Security-Policy violation) so far.
func (b *Browser) Errors() []string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return append([]string(nil), b.errors...)
}

func (b *Browser) failed(s string) {
	b.mu.Lock()
	b.errors = append(b.errors, s)
	b.mu.Unlock()
}

// NewBrowser starts Chromium for tb, stopped at its cleanup; without one
// it skips, or fails under BATON_E2E=1 (CI installs Debian's chromium).
func NewBrowser(tb testing.TB, width, height int) *Browser {
	path := os.Getenv("BATON_CHROMIUM")
	if path == "" {
		path, _ = exec.LookPath("chromium")
	}
	if path == "" {
		if os.Getenv("BATON_E2E") == "1" {
			tb.Fatal("BATON_E2E=1 but chromium is not installed (apt-get install chromium, or set BATON_CHROMIUM)")
		}
		tb.Skip("chromium not installed (set BATON_E2E=1 to require it)")
	}
	// The flags keep it off the network but for the pages it is sent to.
	opts := append(chromedp.DefaultExecAllocatorOptions[:], chromedp.ExecPath(path), chromedp.NoSandbox, chromedp.DisableGPU,
		chromedp.Flag("disable-quic", true), chromedp.Flag("disable-background-networking", true),
		chromedp.Flag("disable-component-update", true), chromedp.Flag("disable-sync", true),
		chromedp.UserDataDir(tb.TempDir()), chromedp.WindowSize(width, height))
	actx, cancelAlloc := chromedp.NewExecAllocator(context.Background(), opts...)
	ctx, cancel := chromedp.NewContext(actx)
	tb.Cleanup(func() { cancel(); cancelAlloc() })
	b := &Browser{Ctx: ctx}
	if err := chromedp.Do(ctx); err != nil { // starts the browser and its tab
		tb.Fatalf("start chromium %s: %v", path, err)
	}
	msgs := chromedp.Console(ctx)
	go func() {
		for m, err := range msgs {
			if err != nil {
				return
			}
			if m.Type == chromedp.ConsoleError || m.IsException() {
				b.failed(m.String())
			}
		}
	}()
	return b
}

// ArtifactsDir is where tests keep what a person may want to look at
// after them (screenshots): $BATON_ARTIFACTS/name, else a directory under
// the system's temporary directory that outlives the test.
func ArtifactsDir(tb testing.TB, name string) string {
	root := os.Getenv("BATON_ARTIFACTS")
	if root == "" {
		root = filepath.Join(os.TempDir(), "baton-artifacts")
	}
	dir := filepath.Join(root, name)
	if err := os.MkdirAll(dir, 0o755); err != nil {
		tb.Fatal(err)
	}
	return dir
}
