// Package dashboard owns the control plane's web pages: an overview of the
// cluster, a page per workload, per node, and the revision history, served
// from the binary (html/template and embed, htmx and its SSE extension
// vendored under static/) and kept live by one Server-Sent Events stream
// per page that sends the page's content again whenever the leader's state
// changes it. The pages are read-only and show nothing secret: they are
// made from the same status the API and `baton status` answer.
package dashboard
