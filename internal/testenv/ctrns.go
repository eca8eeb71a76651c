package testenv

import (
	"context"
	"fmt"

	"github.com/containerd/containerd/v2/client"
	"github.com/containerd/containerd/v2/core/images"
	"github.com/containerd/containerd/v2/pkg/namespaces"
	"github.com/containerd/errdefs"
)

// RemoveContainerdNamespace deletes a containerd namespace a test made,
// with the images left in it (each deleted synchronously, so their content
// and snapshots are gone before the namespace is asked to go: containerd
// refuses to delete a namespace that still holds any). Containers and tasks
// must already be gone. A namespace that was never made is no error.
func RemoveContainerdNamespace(ctx context.Context, cli *client.Client, ns string) error {
	nctx := namespaces.WithNamespace(ctx, ns)
	imgs, err := cli.ImageService().List(nctx)
	if err != nil {
		return fmt.Errorf("list images of containerd namespace %s: %w", ns, err)
	}
	for _, img := range imgs {
		if err := cli.ImageService().Delete(nctx, img.Name, images.SynchronousDelete()); err != nil {
			return fmt.Errorf("delete image %s of containerd namespace %s: %w", img.Name, ns, err)
		}
	}
	if err := cli.NamespaceService().Delete(ctx, ns); err != nil && !errdefs.IsNotFound(err) {
		return fmt.Errorf("delete containerd namespace %s: %w", ns, err)
	}
	return nil
}
