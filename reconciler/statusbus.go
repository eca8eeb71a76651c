package reconciler

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"strconv"
	"strings"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/rs/zerolog"

	"github.com/batonhq/baton/nodeagent/protocol"
)

// The status over NATS: a request to protocol.StatusSubject (a
// StatusRequest as JSON, or nothing for the default) is answered with the
// Status as JSON cut in chunks of StatusChunkBytes, each a message to the
// requester's inbox with the header ChunkHeader "i/n", in order: a status of
// 100,000 replicas is tens of megabytes, far past NATS's payload limit.
const (
	StatusChunkBytes = 256 << 10
	ChunkHeader      = "Baton-Chunk"
	// MaxStatusBytes bounds a status a client reads.
	MaxStatusBytes = 512 << 20
	// maxStatusRequest bounds a request.
	maxStatusRequest = 4 << 10
)

// onStatus answers a status request. A reply that cannot be sent is
// logged, never dropped in silence.
func (r *Reconciler) onStatus(ctx context.Context, m *nats.Msg) {
	log := zerolog.Ctx(ctx)
	if !protocol.IsInbox(m.Reply) {
		r.reject(ctx, fmt.Errorf("reply subject %q is not an inbox", m.Reply), m, "status request rejected")
		return
	}
	var q StatusRequest
	if len(m.Data) > 0 {
		if len(m.Data) > maxStatusRequest || json.Unmarshal(m.Data, &q) != nil || !q.Valid() {
			r.reject(ctx, errors.New("want {\"replicas\": \"auto|all|none\", \"workload\": NAME}"), m, "status request rejected")
			_ = sendChunks(r.cfg.NATS, m.Reply, []byte(`{"error":"bad status request"}`))
			return
		}
	}
	b, err := json.Marshal(r.StatusWith(q))
	if err != nil {
		log.Error().Err(err).Msg("encode status")
		return
	}
	if err := sendChunks(r.cfg.NATS, m.Reply, b); err != nil {
		log.Warn().Err(err).Int("bytes", len(b)).Msg("send status")
	}
}

// sendChunks publishes b to inbox in numbered chunks.
func sendChunks(nc *nats.Conn, inbox string, b []byte) error {
	n := max(1, (len(b)+StatusChunkBytes-1)/StatusChunkBytes)
	for i := range n {
		msg := nats.NewMsg(inbox)
		msg.Header.Set(ChunkHeader, fmt.Sprintf("%d/%d", i+1, n))
		msg.Data = b[i*StatusChunkBytes : min(len(b), (i+1)*StatusChunkBytes)]
		if err := nc.PublishMsg(msg); err != nil {
			return fmt.Errorf("chunk %d/%d: %w", i+1, n, err)
		}
	}
	return nil
}

// FetchStatus asks the leader for its status over NATS and reads every
// chunk of the answer (5 s at most between two).
func FetchStatus(ctx context.Context, nc *nats.Conn, q StatusRequest) (Status, error) {
	var st Status
	inbox := nc.NewInbox()
	sub, err := nc.SubscribeSync(inbox)
	if err != nil {
		return st, err
	}
	defer func() { _ = sub.Unsubscribe() }()
	if err := sub.SetPendingLimits(-1, MaxStatusBytes); err != nil {
		return st, err
	}
	body, _ := json.Marshal(q)
	if err := nc.PublishRequest(protocol.StatusSubject, inbox, body); err != nil {
		return st, fmt.Errorf("ask the reconciler for its status: %w", err)
	}
	var data []byte
	for want := 1; ; want++ {
		cctx, cancel := context.WithTimeout(ctx, 5*time.Second)
		msg, err := sub.NextMsgWithContext(cctx)
		cancel()
		if err != nil {
			if want == 1 {
				return st, fmt.Errorf("ask the reconciler for its status (is it running?): %w", err)
			}
			return st, fmt.Errorf("status: chunk %d never came: %w", want, err)
		}
		i, n, ok := chunkOf(msg)
		if !ok || i != want {
			return st, fmt.Errorf("status: chunk %q out of order (want %d)", msg.Header.Get(ChunkHeader), want)
		}
		if len(data)+len(msg.Data) > MaxStatusBytes {
			return st, fmt.Errorf("status: more than %d bytes", MaxStatusBytes)
		}
		data = append(data, msg.Data...)
		if i == n {
			break
		}
	}
	var e struct {
		Error string `json:"error"`
	}
	if json.Unmarshal(data, &e) == nil && e.Error != "" {
		return st, errors.New("status: " + e.Error)
	}
	if err := json.Unmarshal(data, &st); err != nil {
		return st, fmt.Errorf("decode status: %w", err)
	}
	return st, nil
}

func chunkOf(m *nats.Msg) (i, n int, ok bool) {
	a, b, found := strings.Cut(m.Header.Get(ChunkHeader), "/")
	i, err1 := strconv.Atoi(a)
	n, err2 := strconv.Atoi(b)
	return i, n, found && err1 == nil && err2 == nil && i >= 1 && i <= n
}
