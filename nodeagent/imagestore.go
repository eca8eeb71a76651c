package nodeagent

import (
	"archive/tar"
	"context"
	"crypto/sha256"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"time"

	"github.com/batonhq/baton/nodeagent/protocol"
	"github.com/distribution/reference"
	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
)

// ImageBucket is the NATS object store that shares OCI image archives with
// every node: an air-gapped cluster needs no registry. Objects are named by
// the normalized image reference they provide.
const ImageBucket = "baton-images"

// MaxArchiveBytes caps an image archive in the store.
const MaxArchiveBytes = 2 << 30

// ImageStore finds image archives for the runtime.
type ImageStore interface {
	// Fetch writes the archive providing ref to w; ErrImageNotFound if none.
	Fetch(ctx context.Context, ref string, w io.Writer) error
}

// ObjectImageStore is the ImageStore in a JetStream object store.
type ObjectImageStore struct {
	obs jetstream.ObjectStore
	js  jetstream.JetStream
}

// OpenImageStore opens (creating it if needed) the image bucket.
func OpenImageStore(ctx context.Context, js jetstream.JetStream, replicas int) (*ObjectImageStore, error) {
	obs, err := js.CreateOrUpdateObjectStore(ctx, jetstream.ObjectStoreConfig{Bucket: ImageBucket,
		Description: "Baton image archives", Replicas: replicas, MaxBytes: -1})
	if err != nil {
		return nil, fmt.Errorf("open object store %q: %w", ImageBucket, err)
	}
	return &ObjectImageStore{obs: obs, js: js}, nil
}

// Fetch implements ImageStore. It reads the object with direct gets only
// (its metadata, then its chunks one by one) and checks its digest: no
// consumer is made, so nodes need no right to make one (a consumer's
// delivery subject is not checked against its maker's permissions).
func (s *ObjectImageStore) Fetch(ctx context.Context, ref string, w io.Writer) error {
	info, err := s.obs.GetInfo(ctx, ref)
	if errors.Is(err, jetstream.ErrObjectNotFound) {
		return fmt.Errorf("%w: %s is not in the cluster's image store", ErrImageNotFound, ref)
	}
	if err != nil {
		return fmt.Errorf("image store: %w", err)
	}
	if info.Size > MaxArchiveBytes {
		return fmt.Errorf("image store: %s is %d bytes, more than %d", ref, info.Size, MaxArchiveBytes)
	}
	st, err := s.js.Stream(ctx, "OBJ_"+ImageBucket)
	if err != nil {
		return fmt.Errorf("image store: %w", err)
	}
	subject := "$O." + ImageBucket + ".C." + info.NUID
	sum := sha256.New()
	var seq, read uint64
	for n := uint32(0); n < info.Chunks; n++ {
		m, err := st.GetMsg(ctx, seq+1, jetstream.WithGetMsgSubject(subject))
		if err != nil {
			return fmt.Errorf("image store: read %s (chunk %d of %d): %w", ref, n+1, info.Chunks, err)
		}
		seq = m.Sequence
		read += uint64(len(m.Data))
		if read > info.Size {
			return fmt.Errorf("image store: %s: more data than its %d bytes", ref, info.Size)
		}
		sum.Write(m.Data)
		if _, err := w.Write(m.Data); err != nil {
			return fmt.Errorf("image store: write %s: %w", ref, err)
		}
	}
	if read != info.Size {
		return fmt.Errorf("image store: %s: %d bytes read, %d stored", ref, read, info.Size)
	}
	if want := "SHA-256=" + base64.URLEncoding.EncodeToString(sum.Sum(nil)); info.Digest != want {
		return fmt.Errorf("image store: %s: digest mismatch", ref)
	}
	return nil
}

// Push stores an archive under every image reference it provides and
// returns them.
func (s *ObjectImageStore) Push(ctx context.Context, archive string) ([]string, error) {
	refs, err := ArchiveImages(archive)
	if err != nil {
		return nil, err
	}
	for _, ref := range refs {
		f, err := os.Open(archive)
		if err != nil {
			return nil, err
		}
		_, err = s.obs.Put(ctx, jetstream.ObjectMeta{Name: ref, Description: filepath.Base(archive)}, f)
		f.Close()
		if err != nil {
			return nil, fmt.Errorf("store %s: %w", ref, err)
		}
	}
	return refs, nil
}

// ArchiveImages lists the image references an OCI or Docker archive names,
// normalized as containerd names them.
func ArchiveImages(archive string) ([]string, error) {
	f, err := os.Open(archive)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	tr := tar.NewReader(f)
	var refs []string
	for {
		h, err := tr.Next()
		if errors.Is(err, io.EOF) {
			break
		}
		if err != nil {
			return nil, fmt.Errorf("read %s: %w", archive, err)
		}
		switch h.Name {
		case "index.json":
			var idx struct {
				Manifests []struct {
					Annotations map[string]string `json:"annotations"`
				} `json:"manifests"`
			}
			if err := json.NewDecoder(io.LimitReader(tr, 1<<20)).Decode(&idx); err != nil {
				return nil, fmt.Errorf("%s: index.json: %w", archive, err)
			}
			for _, m := range idx.Manifests {
				if n := m.Annotations["io.containerd.image.name"]; n != "" {
					refs = append(refs, n)
				}
			}
		case "manifest.json":
			var ms []struct{ RepoTags []string }
			if err := json.NewDecoder(io.LimitReader(tr, 1<<20)).Decode(&ms); err != nil {
				return nil, fmt.Errorf("%s: manifest.json: %w", archive, err)
			}
			for _, m := range ms {
				refs = append(refs, m.RepoTags...)
			}
		}
	}
	var out []string
	for _, r := range refs {
		named, err := reference.ParseDockerRef(r)
		if err != nil {
			return nil, fmt.Errorf("%s: image name %q: %w", archive, r, err)
		}
		out = append(out, named.String())
	}
	if len(out) == 0 {
		return nil, fmt.Errorf("%s names no image (an OCI archive needs io.containerd.image.name annotations, a Docker archive RepoTags)", archive)
	}
	return out, nil
}

// fromStore imports the archive for name from the image store, if any.
func (r *Containerd) fromStore(ctx context.Context, name string) error {
	if r.images == nil {
		return fmt.Errorf("%w: no image store", ErrImageNotFound)
	}
	tmp, err := os.CreateTemp(r.dataDir, "image-*.tar")
	if err != nil {
		return err
	}
	defer os.Remove(tmp.Name())
	defer tmp.Close()
	if err := r.images.Fetch(ctx, name, tmp); err != nil {
		if !errors.Is(err, ErrImageNotFound) {
			r.metrics.imageFetched("store", err)
		}
		return err
	}
	_, err = Import(ctx, r.client, r.namespace, tmp.Name())
	r.metrics.imageFetched("store", err)
	return err
}

// SetImageStore makes the runtime import absent images from store before
// trying a registry.
func (r *Containerd) SetImageStore(store ImageStore) { r.images = store }

// LazyImageStore opens the image bucket at each fetch, so an agent started
// before the bucket exists (the server creates it) finds it later, and never
// changes its settings. NC hears the servers announce pushed images.
type LazyImageStore struct {
	JS jetstream.JetStream
	NC *nats.Conn
}

// Fetch implements ImageStore.
func (l LazyImageStore) Fetch(ctx context.Context, ref string, w io.Writer) error {
	obs, err := l.JS.ObjectStore(ctx, ImageBucket)
	if errors.Is(err, jetstream.ErrBucketNotFound) {
		return fmt.Errorf("%w: %s: the cluster has no image store", ErrImageNotFound, ref)
	}
	if err != nil {
		return fmt.Errorf("image store: %w", err)
	}
	return (&ObjectImageStore{obs: obs, js: l.JS}).Fetch(ctx, ref, w)
}

// ExistingImageStore opens the image bucket, creating it with replicas when
// it does not exist yet, without changing an existing one.
func ExistingImageStore(ctx context.Context, js jetstream.JetStream, replicas int) (*ObjectImageStore, error) {
	obs, err := js.ObjectStore(ctx, ImageBucket)
	if errors.Is(err, jetstream.ErrBucketNotFound) {
		return OpenImageStore(ctx, js, replicas)
	}
	if err != nil {
		return nil, fmt.Errorf("open object store %q: %w", ImageBucket, err)
	}
	return &ObjectImageStore{obs: obs, js: js}, nil
}

// Watch announces the images pushed to the store from now on (their
// normalized references), as the servers relay them on
// protocol.ImagesPushedSubject, until ctx ends; the channel is closed then.
func (l LazyImageStore) Watch(ctx context.Context) <-chan string {
	out := make(chan string, 16)
	msgs := make(chan *nats.Msg, 64)
	sub, err := l.NC.ChanSubscribe(protocol.ImagesPushedSubject, msgs)
	go func() {
		defer close(out)
		if err != nil {
			return
		}
		defer func() { _ = sub.Unsubscribe() }()
		for {
			select {
			case <-ctx.Done():
				return
			case m := <-msgs:
				name := string(m.Data)
				if len(name) == 0 || len(name) > 4096 {
					continue
				}
				select {
				case out <- name:
				case <-ctx.Done():
					return
				}
			}
		}
	}()
	return out
}

// RelayPushes announces every image pushed to the store on
// protocol.ImagesPushedSubject, until ctx ends: a server runs it, so nodes
// hear of pushes without watching the store themselves.
func RelayPushes(ctx context.Context, js jetstream.JetStream, nc *nats.Conn) {
	for ctx.Err() == nil {
		if obs, err := js.ObjectStore(ctx, ImageBucket); err == nil {
			if w, err := obs.Watch(ctx, jetstream.UpdatesOnly()); err == nil {
				for info := range w.Updates() {
					if info != nil && !info.Deleted {
						_ = nc.Publish(protocol.ImagesPushedSubject, []byte(info.Name))
					}
				}
				_ = w.Stop()
			}
		}
		select {
		case <-ctx.Done():
		case <-time.After(5 * time.Second):
		}
	}
}
