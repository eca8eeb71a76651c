package join

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/rs/zerolog"

	"github.com/batonhq/baton/internal/fsutil"
	"github.com/batonhq/baton/internal/identity"
	"github.com/batonhq/baton/nodeagent/protocol"
)

// RenewSubjects are where agents ask for a new credential: their own node's
// only (the agents' permissions say so).
const RenewSubjects = "baton.node.*.renew"

// RenewSubject is node's renewal subject.
func RenewSubject(node string) string { return "baton.node." + node + ".renew" }

// renewRequest is an agent's renewal request.
type renewRequest struct {
	PublicKey string `json:"publicKey"`
}

// renewAnswer is the answer: a credential, or why not.
type renewAnswer struct {
	Answer
	Error string `json:"error,omitempty"`
}

// ServeRenewals answers agents' renewal requests until stop is called. The
// node is the one in the subject, which only that node may publish to.
func (a *Authority) ServeRenewals(ctx context.Context, nc *nats.Conn) (stop func(), err error) {
	log := zerolog.Ctx(ctx)
	sub, err := nc.QueueSubscribe(RenewSubjects, protocol.APIQueue, func(m *nats.Msg) {
		node, ok := nodeOfRenewal(m.Subject)
		if !ok || !protocol.IsInbox(m.Reply) || len(m.Data) > maxRequestBytes {
			log.Warn().Str("subject", m.Subject).Str("reply", m.Reply).Int("bytes", len(m.Data)).Msg("renewal refused: malformed")
			return
		}
		var req renewRequest
		var ans renewAnswer
		if err := json.Unmarshal(m.Data, &req); err != nil {
			ans.Error = "want {\"publicKey\": \"U...\"}"
		} else {
			rctx, cancel := context.WithTimeout(ctx, 10*time.Second)
			ans.Answer, err = a.Renew(rctx, node, req.PublicKey)
			cancel()
			if err != nil {
				ans.Error = err.Error()
				log.Warn().Err(err).Str("node", node).Msg("renewal refused")
			}
		}
		b, _ := json.Marshal(ans)
		_ = m.Respond(b)
	})
	if err != nil {
		return nil, fmt.Errorf("subscribe %s: %w", RenewSubjects, err)
	}
	return func() { _ = sub.Unsubscribe() }, nil
}

// Renewer keeps an agent's credential file fresh: when two thirds of its
// life have passed it asks for a new one over the bus, writes it (0600)
// and reconnects with it.
type Renewer struct {
	NC        *nats.Conn
	CredsPath string
	// Retry is the wait after a failed renewal (10 s by default).
	Retry time.Duration
}

// Run renews until ctx ends. A credential without expiry needs nothing.
func (r *Renewer) Run(ctx context.Context) error {
	log := zerolog.Ctx(ctx)
	retry := r.Retry
	if retry <= 0 {
		retry = 10 * time.Second
	}
	for {
		c, err := identity.ReadCreds(r.CredsPath)
		if err != nil {
			// Read again later: a file being replaced is not the end.
			log.Warn().Err(err).Dur("retry", retry).Msg("read the node's credential")
			select {
			case <-ctx.Done():
				return nil
			case <-time.After(retry):
			}
			continue
		}
		if c.Expires.IsZero() {
			return nil
		}
		wait := time.Until(c.Issued.Add(c.Expires.Sub(c.Issued) * 2 / 3))
		select {
		case <-ctx.Done():
			return nil
		case <-time.After(wait):
		}
		if err := r.renew(ctx, c); err != nil {
			log.Warn().Err(err).Time("expires", c.Expires).Dur("retry", retry).Msg("renew the node's credential")
			select {
			case <-ctx.Done():
				return nil
			case <-time.After(retry):
			}
			continue
		}
		log.Info().Msg("node credential renewed")
	}
}

func (r *Renewer) renew(ctx context.Context, c *identity.Credential) error {
	body, _ := json.Marshal(renewRequest{PublicKey: c.PublicKey})
	rctx, cancel := context.WithTimeout(ctx, 10*time.Second)
	defer cancel()
	m, err := r.NC.RequestWithContext(rctx, RenewSubject(c.Name), body)
	if err != nil {
		return err
	}
	var ans renewAnswer
	if err := json.Unmarshal(m.Data, &ans); err != nil {
		return fmt.Errorf("bad answer: %w", err)
	}
	if ans.Error != "" {
		return errors.New(ans.Error)
	}
	creds, err := identity.Creds(ans.JWT, c.Seed)
	if err != nil {
		return err
	}
	if _, err := identity.ParseCreds(creds); err != nil {
		return err
	}
	if err := fsutil.WriteFileAtomic(r.CredsPath, creds, 0o600); err != nil {
		return err
	}
	// Reconnect now, with the new credential (the file is read at every
	// connection), rather than be cut off when the old one expires.
	return r.NC.ForceReconnect()
}

// writeJoined writes a joined credential and its CA into dir.
func writeJoined(credsPath string, creds, caPEM []byte) error {
	if err := os.MkdirAll(filepath.Dir(credsPath), 0o700); err != nil {
		return err
	}
	if err := fsutil.WriteFileAtomic(caBeside(credsPath), caPEM, 0o644); err != nil {
		return err
	}
	return fsutil.WriteFileAtomic(credsPath, creds, 0o600)
}
