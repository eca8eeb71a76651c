package nodeagent

import (
	"archive/tar"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"time"

	"github.com/distribution/reference"
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
type ObjectImageStore struct{ obs jetstream.ObjectStore }

// OpenImageStore opens (creating it if needed) the image bucket.
func OpenImageStore(ctx context.Context, js jetstream.JetStream, replicas int) (*ObjectImageStore, error) {
	obs, err := js.CreateOrUpdateObjectStore(ctx, jetstream.ObjectStoreConfig{Bucket: ImageBucket,
		Description: "Baton image archives", Replicas: replicas, MaxBytes: -1})
	if err != nil {
		return nil, fmt.Errorf("open object store %q: %w", ImageBucket, err)
	}
	return &ObjectImageStore{obs: obs}, nil
}

// Fetch implements ImageStore.
func (s *ObjectImageStore) Fetch(ctx context.Context, ref string, w io.Writer) error {
	res, err := s.obs.Get(ctx, ref)
	if errors.Is(err, jetstream.ErrObjectNotFound) {
		return fmt.Errorf("%w: %s is not in the cluster's image store", ErrImageNotFound, ref)
	}
	if err != nil {
		return fmt.Errorf("image store: %w", err)
	}
	defer res.Close()
	if _, err := io.Copy(w, io.LimitReader(res, MaxArchiveBytes)); err != nil {
		return fmt.Errorf("image store: read %s: %w", ref, err)
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
		return err
	}
	if _, err := Import(ctx, r.client, r.namespace, tmp.Name()); err != nil {
		return err
	}
	return nil
}

// SetImageStore makes the runtime import absent images from store before
// trying a registry.
func (r *Containerd) SetImageStore(store ImageStore) { r.images = store }

// LazyImageStore opens the image bucket at each fetch, so an agent started
// before the bucket exists (the server creates it) finds it later, and never
// changes its settings.
type LazyImageStore struct{ JS jetstream.JetStream }

// Fetch implements ImageStore.
func (l LazyImageStore) Fetch(ctx context.Context, ref string, w io.Writer) error {
	obs, err := l.JS.ObjectStore(ctx, ImageBucket)
	if errors.Is(err, jetstream.ErrBucketNotFound) {
		return fmt.Errorf("%w: %s: the cluster has no image store", ErrImageNotFound, ref)
	}
	if err != nil {
		return fmt.Errorf("image store: %w", err)
	}
	return (&ObjectImageStore{obs: obs}).Fetch(ctx, ref, w)
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
	return &ObjectImageStore{obs: obs}, nil
}

// Watch announces the images pushed to the store from now on (their
// normalized references), until ctx ends; it waits for the bucket when the
// cluster has none yet. The channel is closed when ctx ends.
func (l LazyImageStore) Watch(ctx context.Context) <-chan string {
	out := make(chan string, 16)
	go func() {
		defer close(out)
		for ctx.Err() == nil {
			if obs, err := l.JS.ObjectStore(ctx, ImageBucket); err == nil {
				if w, err := obs.Watch(ctx, jetstream.UpdatesOnly()); err == nil {
					for info := range w.Updates() {
						if info == nil || info.Deleted {
							continue
						}
						select {
						case out <- info.Name:
						case <-ctx.Done():
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
	}()
	return out
}
