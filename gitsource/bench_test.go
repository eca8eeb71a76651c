package gitsource

import (
	"bufio"
	"context"
	"fmt"
	"math/rand/v2"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/rs/zerolog"
)

// Figures for docs/benchmarks.md, against a repository of 10,000 commits and
// 5,000 files served by git http-backend on loopback, side by side with the
// git command line doing the same work in the same run:
//
//	go test -run '^$' -bench . -benchtime 20x ./gitsource

const (
	benchCommits = 10000
	benchFiles   = 5000
)

var (
	bigOnce sync.Once
	bigRoot string
	bigErr  error
)

// bigRepo builds the repository once per test binary with git fast-import.
func bigRepo(b *testing.B) string {
	bigOnce.Do(func() {
		bigRoot, bigErr = os.MkdirTemp("", "baton-bench-git-")
		if bigErr != nil {
			return
		}
		dir := filepath.Join(bigRoot, "config")
		if out, err := exec.Command("git", "init", "-q", "-b", "main", dir).CombinedOutput(); err != nil {
			bigErr = fmt.Errorf("%v: %s", err, out)
			return
		}
		cmd := exec.Command("git", "fast-import", "--quiet")
		cmd.Dir = dir
		in, _ := cmd.StdinPipe()
		if err := cmd.Start(); err != nil {
			bigErr = err
			return
		}
		w := bufio.NewWriter(in)
		for c := 0; c < benchCommits; c++ {
			fmt.Fprintf(w, "commit refs/heads/main\ncommitter Bench <bench@localhost> %d +0000\ndata <<EOM\ncommit %d\nEOM\n", 1700000000+c, c)
			if c == 0 {
				for f := 0; f < benchFiles; f++ {
					body := fmt.Sprintf("apiVersion: v1\nkind: ConfigMap\nmetadata: {name: c%d}\ndata: {v: \"0\"}\n", f)
					fmt.Fprintf(w, "M 644 inline apps/%02d/c%04d.yaml\ndata %d\n%s\n", f%50, f, len(body), body)
				}
			} else {
				f := c % benchFiles
				body := fmt.Sprintf("apiVersion: v1\nkind: ConfigMap\nmetadata: {name: c%d}\ndata: {v: \"%d\"}\n", f, c)
				fmt.Fprintf(w, "M 644 inline apps/%02d/c%04d.yaml\ndata %d\n%s\n", f%50, f, len(body), body)
			}
		}
		w.Flush()
		in.Close()
		if err := cmd.Wait(); err != nil {
			bigErr = fmt.Errorf("fast-import: %w", err)
			return
		}
		for _, args := range [][]string{{"checkout", "-q", "main"}, {"gc", "-q"}} {
			c := exec.Command("git", args...)
			c.Dir = dir
			if out, err := c.CombinedOutput(); err != nil {
				bigErr = fmt.Errorf("git %v: %v: %s", args, err, out)
				return
			}
		}
	})
	if bigErr != nil {
		b.Fatal(bigErr)
	}
	return bigRoot
}

func gitIn(b *testing.B, dir string, args ...string) {
	cmd := exec.Command("git", append([]string{"-c", "user.name=b", "-c", "user.email=b@localhost"}, args...)...)
	cmd.Dir = dir
	if out, err := cmd.CombinedOutput(); err != nil {
		b.Fatalf("git %v: %v: %s", args, err, out)
	}
}

// pushOne commits one change into the served repository.
func pushOne(b *testing.B, root string, i int) {
	dir := filepath.Join(root, "config")
	if err := os.WriteFile(filepath.Join(dir, "apps/00/c0000.yaml"), []byte(fmt.Sprintf("v: %d-%d\n", time.Now().UnixNano(), i)), 0o644); err != nil {
		b.Fatal(err)
	}
	gitIn(b, dir, "commit", "-qam", fmt.Sprintf("change %d", i))
}

func BenchmarkPollNoChange(b *testing.B) {
	root := bigRepo(b)
	srv := newGitHTTP(b, root, false)
	url := srv.URL + "/config"
	b.Run("baton", func(b *testing.B) {
		s, _ := New(Config{URL: url, Branch: "main", CacheDir: b.TempDir(), Auth: Auth{Username: httpUser, Password: httpPass}})
		if _, err := s.Fetch(context.Background()); err != nil { // the initial clone, untimed
			b.Fatal(err)
		}
		before := srv.bytes.Load()
		b.ResetTimer()
		for range b.N {
			if _, err := s.Fetch(context.Background()); err != nil {
				b.Fatal(err)
			}
		}
		b.ReportMetric(float64(srv.bytes.Load()-before)/float64(b.N), "served-B/op")
	})
	b.Run("git-ls-remote", func(b *testing.B) {
		authURL := strings.Replace(url, "http://", "http://"+httpUser+":"+httpPass+"@", 1)
		before := srv.bytes.Load()
		b.ResetTimer()
		for range b.N {
			if out, err := exec.Command("git", "ls-remote", authURL, "refs/heads/main").CombinedOutput(); err != nil {
				b.Fatalf("%v: %s", err, out)
			}
		}
		b.ReportMetric(float64(srv.bytes.Load()-before)/float64(b.N), "served-B/op")
	})
}

func BenchmarkFetchOneNewCommit(b *testing.B) {
	root := bigRepo(b)
	srv := newGitHTTP(b, root, false)
	url := srv.URL + "/config"
	b.Run("baton", func(b *testing.B) {
		s, _ := New(Config{URL: url, Branch: "main", CacheDir: b.TempDir(), Auth: Auth{Username: httpUser, Password: httpPass}})
		if _, err := s.Fetch(context.Background()); err != nil {
			b.Fatal(err)
		}
		var served int64
		b.ResetTimer()
		for i := range b.N {
			b.StopTimer()
			pushOne(b, root, i)
			before := srv.bytes.Load()
			b.StartTimer()
			if _, err := s.Fetch(context.Background()); err != nil {
				b.Fatal(err)
			}
			served += srv.bytes.Load() - before
		}
		b.ReportMetric(float64(served)/float64(b.N), "served-B/op")
	})
	b.Run("git-fetch", func(b *testing.B) {
		authURL := strings.Replace(url, "http://", "http://"+httpUser+":"+httpPass+"@", 1)
		clone := filepath.Join(b.TempDir(), "clone")
		if out, err := exec.Command("git", "clone", "-q", "--bare", authURL, clone).CombinedOutput(); err != nil {
			b.Fatalf("%v: %s", err, out)
		}
		var served int64
		b.ResetTimer()
		for i := range b.N {
			b.StopTimer()
			pushOne(b, root, i)
			before := srv.bytes.Load()
			b.StartTimer()
			gitIn(b, clone, "fetch", "-q", "origin", "+refs/heads/main:refs/heads/main")
			served += srv.bytes.Load() - before
		}
		b.ReportMetric(float64(served)/float64(b.N), "served-B/op")
	})
}

// BenchmarkPushToRevision: time from a commit landing on the server to the
// source handing out its snapshot, with a webhook and with polling alone.
func BenchmarkPushToRevision(b *testing.B) {
	root := bigRepo(b)
	srv := newGitHTTP(b, root, false)
	for _, c := range []struct {
		name    string
		poll    time.Duration
		webhook bool
	}{{"webhook", time.Hour, true}, {"poll-15s", 15 * time.Second, false}, {"poll-2s", 2 * time.Second, false}} {
		b.Run(c.name, func(b *testing.B) {
			s, _ := New(Config{URL: srv.URL + "/config", Branch: "main", CacheDir: b.TempDir(), Auth: Auth{Username: httpUser, Password: httpPass}})
			revs := make(chan string, 16)
			ctx, cancel := context.WithCancel(context.Background())
			defer cancel()
			go s.Poll(ctx, c.poll, func(sn Snapshot) { revs <- sn.Revision }, func(error) {})
			<-revs
			hook, _ := NewWebhook([]byte(hookSecret), s.Trigger, 100, 100, zerolog.Nop())
			b.ResetTimer()
			for i := range b.N {
				if !c.webhook {
					// Push at a random point of the poll cycle, as a person would.
					b.StopTimer()
					time.Sleep(time.Duration(rand.Int64N(int64(c.poll))))
					b.StartTimer()
				}
				pushOne(b, root, i)
				if c.webhook {
					req, _ := http.NewRequest("POST", "/hooks/git", strings.NewReader("{}"))
					req.Header.Set("X-Gitlab-Token", hookSecret)
					hook.ServeHTTP(discard{}, req)
				}
				select {
				case <-revs:
				case <-time.After(time.Minute):
					b.Fatal("revision not seen within a minute")
				}
			}
		})
	}
}

type discard struct{}

func (discard) Header() http.Header         { return http.Header{} }
func (discard) Write(b []byte) (int, error) { return len(b), nil }
func (discard) WriteHeader(int)             {}

// BenchmarkLocalCommitToRevision: a repository on this machine, as `baton
// up` seeds it: time from `git commit` starting to the source handing out
// the new revision, watched (inotify) and polled alone at `baton up`'s
// interval (2 s; the commit lands at a random point of the cycle). The
// git-commit-ms metric is the git command alone, part of every figure.
//
//	go test -run '^$' -bench LocalCommitToRevision -benchtime 20x ./gitsource
func BenchmarkLocalCommitToRevision(b *testing.B) {
	for _, c := range []struct {
		name  string
		poll  time.Duration
		watch bool
	}{{"watch", time.Hour, true}, {"poll-2s", 2 * time.Second, false}} {
		b.Run(c.name, func(b *testing.B) {
			dir := b.TempDir()
			gitIn(b, dir, "init", "-q", "-b", "main")
			for i := range 10 {
				if err := os.WriteFile(filepath.Join(dir, fmt.Sprintf("app%d.yaml", i)), fmt.Appendf(nil, "apiVersion: v1\nkind: ConfigMap\nmetadata: {name: c%d}\n", i), 0o644); err != nil {
					b.Fatal(err)
				}
			}
			gitIn(b, dir, "add", ".")
			gitIn(b, dir, "commit", "-qm", "seed")
			s, _ := New(Config{URL: dir, Branch: "main", CacheDir: b.TempDir()})
			type arrival struct {
				rev string
				at  time.Time
			}
			revs := make(chan arrival, 16)
			ctx, cancel := context.WithCancel(context.Background())
			defer cancel()
			go s.Poll(ctx, c.poll, func(sn Snapshot) { revs <- arrival{sn.Revision, time.Now()} }, func(error) {})
			if c.watch {
				watching := make(chan struct{})
				go func() { _ = s.watch(ctx, func() { close(watching) }) }()
				<-watching
			}
			<-revs
			var total, gitTotal time.Duration
			b.ResetTimer()
			for i := range b.N {
				b.StopTimer()
				if !c.watch {
					time.Sleep(time.Duration(rand.Int64N(int64(c.poll))))
				}
				if err := os.WriteFile(filepath.Join(dir, "app0.yaml"), fmt.Appendf(nil, "v: %d\n", i), 0o644); err != nil {
					b.Fatal(err)
				}
				b.StartTimer()
				start := time.Now()
				gitIn(b, dir, "commit", "-qam", fmt.Sprintf("change %d", i))
				gitTotal += time.Since(start)
				select {
				case a := <-revs:
					total += a.at.Sub(start)
				case <-time.After(time.Minute):
					b.Fatal("revision not seen within a minute")
				}
			}
			b.ReportMetric(float64(total.Microseconds())/1000/float64(b.N), "ms/revision")
			b.ReportMetric(float64(gitTotal.Microseconds())/1000/float64(b.N), "git-commit-ms")
			b.ReportMetric(float64((total-gitTotal).Microseconds())/1000/float64(b.N), "after-commit-ms")
		})
	}
}
