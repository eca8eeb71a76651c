package protocol

import (
	"errors"
	"strings"
	"testing"
)

func TestDecode(t *testing.T) {
	tests := []struct {
		name    string
		data    string
		wantErr error
		errText string
	}{
		{"ok", `{"version":1,"op":"stop","stopId":"web-1"}`, nil, ""},
		{"future version", `{"version":2,"op":"stop"}`, ErrVersion, "unsupported message version: 2"},
		{"no version", `{"op":"stop"}`, ErrVersion, "unsupported message version: 0"},
		{"not json", `{"version":1,`, nil, "decode message"},
		{"wrong type", `{"version":1,"op":7}`, nil, "decode message"},
		{"too large", `{"version":1,"stopId":"` + strings.Repeat("x", MaxMessageBytes) + `"}`, ErrTooLarge, "message too large"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var c Command
			err := Decode([]byte(tt.data), &c)
			if tt.errText == "" {
				if err != nil || c.Op != OpStop || c.StopID != "web-1" {
					t.Fatalf("Decode = %v, %+v", err, c)
				}
				return
			}
			if err == nil || !strings.Contains(err.Error(), tt.errText) {
				t.Fatalf("err = %v, want %q", err, tt.errText)
			}
			if tt.wantErr != nil && !errors.Is(err, tt.wantErr) {
				t.Fatalf("err = %v, want errors.Is %v", err, tt.wantErr)
			}
		})
	}
}

func TestReplyErr(t *testing.T) {
	if err := (Reply{Version: Version, OK: true}).Err(); err != nil {
		t.Fatal(err)
	}
	err := Reply{Version: Version, Code: CodeBadRequest, Error: "invalid replica id"}.Err()
	var ce *CommandError
	if !errors.As(err, &ce) || ce.Code != CodeBadRequest || err.Error() != "bad_request: invalid replica id" {
		t.Fatalf("err = %v", err)
	}
}

func TestSubjects(t *testing.T) {
	if got := CommandSubject("n1"); got != "baton.node.n1.cmd" {
		t.Fatal(got)
	}
	if got := ReportSubject("n1"); got != "baton.node.n1.report" {
		t.Fatal(got)
	}
	if got := HeartbeatSubject("n1"); got != "baton.node.n1.heartbeat" {
		t.Fatal(got)
	}
}

func TestIsInbox(t *testing.T) {
	for s, want := range map[string]bool{
		"_INBOX.abc": true, "_INBOX.abc.1": true, "_I.admin.bob.xyz": true, "_I.agent.n1.abc.def": true,
		"": false, "baton.api.admin.unpin": false, "$KV.baton.pin": false, "_INBOX": false, "_INBOX.": false,
		"_INBOX.*": false, "_INBOX.>": false, "_I.admin..x": false, "x._INBOX.abc": false,
	} {
		if got := IsInbox(s); got != want {
			t.Errorf("IsInbox(%q) = %v, want %v", s, got, want)
		}
	}
}
