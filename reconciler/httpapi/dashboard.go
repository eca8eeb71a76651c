package httpapi

import (
	"context"
	"time"

	"github.com/batonhq/baton/nodeagent"
	"github.com/batonhq/baton/nodeagent/protocol"
	"github.com/batonhq/baton/reconciler"
	"github.com/batonhq/baton/reconciler/dashboard"
	"github.com/batonhq/baton/reconciler/store"
)

// dashSource gives the dashboard the leader's status, the history from
// the store and the agents' logs over this server's NATS connection.
type dashSource struct{ s *Server }

func (d dashSource) Status(q reconciler.StatusRequest) (reconciler.Status, error) {
	rec := d.s.Leader()
	if rec == nil {
		return reconciler.Status{}, dashboard.ErrStandby
	}
	return rec.StatusWith(q), nil
}

func (d dashSource) History(ctx context.Context) ([]store.HistoryEntry, error) {
	return store.ReadHistory(ctx, d.s.js)
}

func (d dashSource) Logs(ctx context.Context, node string, req protocol.LogsRequest, out func(protocol.LogChunk)) error {
	return nodeagent.StreamLogs(ctx, d.s.js.Conn(), node, req, 10*time.Second, out)
}
