// Command baton-mkimage packs one static binary into an OCI image archive,
// for images that must exist without a registry (the examples, the tests).
//
//	baton-mkimage -ref baton.local/hello:v1 -bin build/hello -o build/hello.oci.tar
package main

import (
	"flag"
	"fmt"
	"os"
	"path/filepath"

	"github.com/batonhq/baton/internal/ociarchive"
)

func main() {
	ref := flag.String("ref", "", "image name, e.g. baton.local/hello:v1")
	bin := flag.String("bin", "", "static binary to put at /<name> as the entrypoint")
	out := flag.String("o", "", "archive to write")
	flag.Parse()
	if *ref == "" || *bin == "" || *out == "" {
		fmt.Fprintln(os.Stderr, "usage: baton-mkimage -ref NAME -bin FILE -o ARCHIVE")
		os.Exit(2)
	}
	data, err := os.ReadFile(*bin)
	if err != nil {
		fmt.Fprintln(os.Stderr, "baton-mkimage:", err)
		os.Exit(1)
	}
	path := "/" + filepath.Base(*bin)
	img := ociarchive.Image{
		Ref:        *ref,
		Files:      []ociarchive.File{{Path: path, Mode: 0o755, Data: data}},
		Entrypoint: []string{path},
	}
	if err := ociarchive.WriteFile(*out, img); err != nil {
		fmt.Fprintln(os.Stderr, "baton-mkimage:", err)
		os.Exit(1)
	}
}
