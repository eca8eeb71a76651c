package backup_test

import (
	"bytes"
	"compress/gzip"
	"context"
	"errors"
	"strings"
	"testing"

	"github.com/nats-io/nats.go/jetstream"

	"github.com/batonhq/baton/internal/backup"
	"github.com/batonhq/baton/internal/testenv"
)

func bucket(t *testing.T, js jetstream.JetStream, name string, kv map[string]string) {
	t.Helper()
	b, err := js.CreateKeyValue(context.Background(), jetstream.KeyValueConfig{Bucket: name, History: 5})
	if err != nil {
		t.Fatal(err)
	}
	for k, v := range kv {
		if _, err := b.Put(context.Background(), k, []byte(v)); err != nil {
			t.Fatal(err)
		}
	}
}

// A snapshot taken on one server, written and read back, lands in the
// empty buckets of another; a bucket that holds keys is refused.
func TestRoundTrip(t *testing.T) {
	ctx := context.Background()
	src, err := jetstream.New(testenv.NATS(t))
	if err != nil {
		t.Fatal(err)
	}
	bucket(t, src, "state", map[string]string{"pin": "abc", "history.1": "x"})
	bucket(t, src, "join", map[string]string{"token.1": "hash"})
	del, _ := src.KeyValue(ctx, "state")
	_, _ = del.Put(ctx, "gone", []byte("1"))
	_ = del.Delete(ctx, "gone")
	snap, err := backup.Take(ctx, src, map[string][]byte{"ca.crt": []byte("pem")}, "state", "join", "absent")
	if err != nil {
		t.Fatal(err)
	}
	var buf bytes.Buffer
	if err := snap.Write(&buf); err != nil {
		t.Fatal(err)
	}
	got, err := backup.Read(&buf)
	if err != nil {
		t.Fatal(err)
	}
	if len(got.Buckets["state"]) != 2 || len(got.Buckets["join"]) != 1 || got.Buckets["absent"] != nil || string(got.Identity["ca.crt"]) != "pem" {
		t.Fatalf("read back %+v", got)
	}

	dst, err := jetstream.New(testenv.NATS(t))
	if err != nil {
		t.Fatal(err)
	}
	bucket(t, dst, "state", nil) // its owner made it: used as it is
	n, err := got.Apply(ctx, dst, 1)
	if err != nil || n != 3 {
		t.Fatalf("Apply = %d, %v; want 3 keys", n, err)
	}
	kv, _ := dst.KeyValue(ctx, "state")
	if e, err := kv.Get(ctx, "pin"); err != nil || string(e.Value()) != "abc" {
		t.Fatalf("pin after Apply: %v", err)
	}
	if st, _ := kv.Status(ctx); st.History() != 5 {
		t.Fatalf("Apply changed the bucket's settings: history %d", st.History())
	}
	if _, err := got.Apply(ctx, dst, 1); !errors.Is(err, backup.ErrNotEmpty) {
		t.Fatalf("Apply over a state: %v, want ErrNotEmpty", err)
	}
}

func TestReadRefuses(t *testing.T) {
	var other bytes.Buffer
	zw := gzip.NewWriter(&other)
	_, _ = zw.Write([]byte(`{"version": 99}`))
	_ = zw.Close()
	for name, in := range map[string][]byte{"not gzip": []byte("hello"), "not json": gzipped("{"), "another version": other.Bytes()} {
		if _, err := backup.Read(bytes.NewReader(in)); err == nil {
			t.Errorf("%s: want an error", name)
		} else if name == "another version" && !strings.Contains(err.Error(), "version 99") {
			t.Errorf("%s: %v", name, err)
		}
	}
}

func gzipped(s string) []byte {
	var b bytes.Buffer
	zw := gzip.NewWriter(&b)
	_, _ = zw.Write([]byte(s))
	_ = zw.Close()
	return b.Bytes()
}
