package store

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"strings"
	"time"

	"github.com/nats-io/nats.go/jetstream"
	"github.com/rs/zerolog"
)

// NodeControl is an operator's say over a node: cordoned, no new replica is
// placed on it; draining (cordoned too), its replicas move off it, as
// `kubectl drain` and `nomad node drain` do.
type NodeControl struct {
	Node     string    `json:"node"`
	Cordoned bool      `json:"cordoned"`
	Draining bool      `json:"draining"`
	By       string    `json:"by,omitempty"`
	At       time.Time `json:"at"`
}

// nodeControlPrefix keys the node controls: nodectl.<node>.
const nodeControlPrefix = "nodectl."

// SetNodeControl records c; a control that neither cordons nor drains
// removes the record (uncordon).
func SetNodeControl(ctx context.Context, js jetstream.JetStream, c NodeControl) error {
	kv, err := openBucket(ctx, js)
	if err != nil {
		return err
	}
	if c.Draining {
		c.Cordoned = true
	}
	c.By = cut(c.By, MaxPinText)
	key := nodeControlPrefix + c.Node
	if !c.Cordoned {
		if err := kv.Delete(ctx, key); err != nil && !errors.Is(err, jetstream.ErrKeyNotFound) {
			return fmt.Errorf("uncordon %s: %w", c.Node, err)
		}
		return nil
	}
	b, _ := json.Marshal(c)
	if _, err := kv.Put(ctx, key, b); err != nil {
		return fmt.Errorf("cordon %s: %w", c.Node, err)
	}
	return nil
}

// WatchNodeControls calls onChange with every node control, once they are
// read and at each change, until ctx ends.
func WatchNodeControls(ctx context.Context, js jetstream.JetStream, onChange func(map[string]NodeControl)) error {
	kv, err := openBucket(ctx, js)
	if err != nil {
		return err
	}
	w, err := kv.Watch(ctx, nodeControlPrefix+"*")
	if err != nil {
		return fmt.Errorf("watch node controls: %w", err)
	}
	defer func() { _ = w.Stop() }()
	all := map[string]NodeControl{}
	initial := true
	for {
		select {
		case <-ctx.Done():
			return nil
		case e, ok := <-w.Updates():
			if !ok {
				if ctx.Err() != nil {
					return nil
				}
				return errors.New("watch node controls: the watch ended")
			}
			if e == nil { // end of the initial values
				initial = false
				onChange(copyControls(all))
				continue
			}
			node := strings.TrimPrefix(e.Key(), nodeControlPrefix)
			if e.Operation() != jetstream.KeyValuePut {
				delete(all, node)
			} else {
				var c NodeControl
				if err := json.Unmarshal(e.Value(), &c); err != nil || c.Node != node {
					zerolog.Ctx(ctx).Warn().Err(err).Str("key", e.Key()).Msg("node control record damaged: ignored")
					continue
				}
				all[node] = c
			}
			if !initial {
				onChange(copyControls(all))
			}
		}
	}
}

func copyControls(m map[string]NodeControl) map[string]NodeControl {
	out := make(map[string]NodeControl, len(m))
	for k, v := range m {
		out[k] = v
	}
	return out
}
