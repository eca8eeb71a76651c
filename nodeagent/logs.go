package nodeagent

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"sort"
	"sync/atomic"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/rs/zerolog"

	"github.com/batonhq/baton/nodeagent/protocol"
)

// Log files: the shim appends a container's stdout and stderr to
// logs/<container>.log; the agent rotates it (copy to .log.1, truncate) when
// it passes MaxLogBytes, so a node keeps at most two files per container.
const (
	MaxLogBytes   = 10 << 20
	maxChunk      = 64 << 10
	maxFollowers  = 16
	followPollInt = 300 * time.Millisecond
)

// LogFiles returns the log file of each container of a replica, by container name.
func (r *Containerd) LogFiles(ctx context.Context, replica string) (map[string]string, error) {
	cs, err := r.containersOf(r.ctx(ctx), replica)
	if err != nil {
		return nil, err
	}
	out := map[string]string{}
	for _, c := range cs {
		out[c.labels[LabelContainer]] = filepath.Join(r.dataDir, "logs", c.c.ID()+".log")
	}
	return out, nil
}

// rotateLogs copies and truncates the log files over max bytes. The shim
// opens them with O_APPEND, so it goes on writing at the new end.
func (r *Containerd) rotateLogs(max int64) error {
	files, err := filepath.Glob(filepath.Join(r.dataDir, "logs", "*.log"))
	if err != nil {
		return err
	}
	for _, f := range files {
		info, err := os.Stat(f)
		if err != nil || info.Size() <= max {
			continue
		}
		if err := copyFile(f, f+".1"); err != nil {
			return fmt.Errorf("rotate %s: %w", filepath.Base(f), err)
		}
		if err := os.Truncate(f, 0); err != nil {
			return fmt.Errorf("rotate %s: %w", filepath.Base(f), err)
		}
	}
	return nil
}

func copyFile(src, dst string) error {
	in, err := os.Open(src)
	if err != nil {
		return err
	}
	defer in.Close()
	tmp := dst + ".tmp"
	out, err := os.OpenFile(tmp, os.O_CREATE|os.O_WRONLY|os.O_TRUNC, 0o600)
	if err != nil {
		return err
	}
	if _, err := io.Copy(out, in); err != nil {
		out.Close()
		return err
	}
	if err := out.Close(); err != nil {
		return err
	}
	return os.Rename(tmp, dst)
}

// tailLines returns the last n lines of data (all of it when n <= 0).
func tailLines(data []byte, n int) []byte {
	if n <= 0 {
		return data
	}
	end := len(data)
	if end > 0 && data[end-1] == '\n' {
		end--
	}
	for i := end - 1; i >= 0; i-- {
		if data[i] == '\n' {
			if n--; n == 0 {
				return data[i+1:]
			}
		}
	}
	return data
}

// logServer answers LogsRequests.
type logServer struct {
	nc        *nats.Conn
	node      string
	files     func(ctx context.Context, replica string) (map[string]string, error)
	followers atomic.Int32
}

func (l *logServer) serve(ctx context.Context, m *nats.Msg) {
	var req protocol.LogsRequest
	err := protocol.Decode(m.Data, &req)
	if protocol.IsInbox(m.Reply) {
		req.Inbox = m.Reply // answer the request itself (what an agent's credential allows)
	}
	if err != nil || !protocol.IsInbox(req.Inbox) || !replicaID.MatchString(req.Replica) || (req.Follow && !protocol.ValidSession(req.Session)) {
		zerolog.Ctx(ctx).Warn().Err(err).Str("inbox", req.Inbox).Msg("logs request rejected")
		if protocol.IsInbox(req.Inbox) {
			l.send(req.Inbox, protocol.LogChunk{EOF: true, Error: "bad logs request"})
		}
		return
	}
	files, err := l.files(ctx, req.Replica)
	if err != nil || len(files) == 0 {
		l.send(req.Inbox, protocol.LogChunk{EOF: true, Error: fmt.Sprintf("replica %s has no containers on this node", req.Replica)})
		return
	}
	var names []string
	for name := range files {
		if req.Container == "" || req.Container == name {
			names = append(names, name)
		}
	}
	if len(names) == 0 {
		l.send(req.Inbox, protocol.LogChunk{EOF: true, Error: fmt.Sprintf("replica %s has no container %q", req.Replica, req.Container)})
		return
	}
	sort.Strings(names)
	offsets := map[string]int64{}
	for _, name := range names {
		data, _ := os.ReadFile(files[name])
		offsets[name] = int64(len(data))
		l.sendData(req.Inbox, name, tailLines(data, req.Tail))
	}
	if !req.Follow {
		l.send(req.Inbox, protocol.LogChunk{EOF: true})
		return
	}
	if l.followers.Add(1) > maxFollowers {
		l.followers.Add(-1)
		l.send(req.Inbox, protocol.LogChunk{EOF: true, Error: "too many log followers on this node"})
		return
	}
	go func() {
		defer l.followers.Add(-1)
		l.follow(ctx, req, files, names, offsets)
	}()
}

func (l *logServer) follow(ctx context.Context, req protocol.LogsRequest, files map[string]string, names []string, offsets map[string]int64) {
	alive := make(chan struct{}, 1)
	sub, err := l.nc.Subscribe(protocol.LogsAliveSubject(l.node, req.Session), func(*nats.Msg) {
		select {
		case alive <- struct{}{}:
		default:
		}
	})
	if err != nil {
		return
	}
	defer func() { _ = sub.Unsubscribe() }()
	lastAlive := time.Now()
	tick := time.NewTicker(followPollInt)
	defer tick.Stop()
	for {
		select {
		case <-ctx.Done():
			l.send(req.Inbox, protocol.LogChunk{EOF: true, Error: "agent stopping"})
			return
		case <-alive:
			lastAlive = time.Now()
		case <-tick.C:
			if time.Since(lastAlive) > 3*protocol.LogsKeepAlive {
				return // the follower is gone
			}
			for _, name := range names {
				data, off := readFrom(files[name], offsets[name])
				offsets[name] = off
				l.sendData(req.Inbox, name, data)
			}
		}
	}
}

// readFrom reads what was appended to file since off; a file that shrank
// was rotated, so it is read from its start.
func readFrom(file string, off int64) ([]byte, int64) {
	f, err := os.Open(file)
	if err != nil {
		return nil, off
	}
	defer f.Close()
	info, err := f.Stat()
	if err != nil {
		return nil, off
	}
	if info.Size() < off {
		off = 0
	}
	if info.Size() == off {
		return nil, off
	}
	data, _ := io.ReadAll(io.NewSectionReader(f, off, min(info.Size()-off, MaxLogBytes)))
	return data, off + int64(len(data))
}

func (l *logServer) sendData(inbox, container string, data []byte) {
	for len(data) > 0 {
		n := min(len(data), maxChunk)
		if i := bytes.LastIndexByte(data[:n], '\n'); i >= 0 && n < len(data) {
			n = i + 1
		}
		l.send(inbox, protocol.LogChunk{Container: container, Data: data[:n]})
		data = data[n:]
	}
}

func (l *logServer) send(inbox string, c protocol.LogChunk) {
	c.Version = protocol.Version
	_ = l.nc.Publish(inbox, protocol.Encode(c))
}
