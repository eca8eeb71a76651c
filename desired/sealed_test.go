package desired

import (
	"fmt"
	"strings"
	"testing"

	"filippo.io/age"
)

func sealedManifest(t *testing.T, r age.Recipient, value string) string {
	t.Helper()
	ct, err := Seal(r, []byte(value))
	if err != nil {
		t.Fatal(err)
	}
	return fmt.Sprintf("apiVersion: baton.dev/v1\nkind: SealedSecret\nmetadata: {name: db}\nspec:\n  encryptedData:\n    password: %s\n---\n", ct) +
		strings.Replace(base, "          image: web:1\n", "          image: web:1\n          env: [{name: PW, valueFrom: {secretKeyRef: {name: db, key: password}}}]\n", 1)
}

func TestSealedSecret(t *testing.T) {
	id, err := age.GenerateX25519Identity()
	if err != nil {
		t.Fatal(err)
	}
	m := sealedManifest(t, id.Recipient(), "hunter2")
	files := map[string][]byte{"app.yaml": []byte(m)}

	st, err := LoadWith(t.Context(), files, Options{Unsealer: AgeUnsealer{Identities: []age.Identity{id}}})
	if err != nil {
		t.Fatal(err)
	}
	if got := string(st.Secrets[0].Data["password"]); got != "hunter2" {
		t.Fatalf("decrypted %q", got)
	}
	pod := st.ResolvePod(st.Workloads[0].Pod)
	if env := pod.Containers[0].Env; len(env) != 1 || env[0].Name != "PW" || env[0].Value != "hunter2" {
		t.Fatalf("resolved env %+v", env)
	}
	if strings.Contains(fmt.Sprintf("%+v", st.Workloads), "hunter2") {
		t.Fatal("the secret value is in the workload model")
	}

	// Without the key the revision still validates (keys are known); values are not.
	st2, err := Load(files)
	if err != nil {
		t.Fatal(err)
	}
	if len(st2.Secrets[0].Data) != 0 || st2.Secrets[0].Keys[0] != "password" {
		t.Fatalf("without a key: %+v", st2.Secrets[0])
	}
	// The hash says whether the values were decrypted: pods that ran without
	// them roll when they become readable.
	if st.Workloads[0].Hash == st2.Workloads[0].Hash {
		t.Fatal("the same hash with and without the values")
	}
	// A server requires them: without the key the revision is an error, at
	// the value's position.
	_, err = LoadWith(t.Context(), files, Options{RequireUnsealed: true})
	if err == nil || !strings.Contains(err.Error(), "app.yaml:6:5: spec.encryptedData.password: cannot be decrypted: this server has no --secret-key") {
		t.Fatalf("required, without a key: %v", err)
	}
	// Resealing the same value is a change (new ciphertext): it rolls out.
	st3, _ := Load(map[string][]byte{"app.yaml": []byte(sealedManifest(t, id.Recipient(), "hunter2"))})
	if st3.Workloads[0].Hash == st2.Workloads[0].Hash {
		t.Fatal("a resealed secret did not change the hash")
	}

	// The wrong key is an error at the value's position, naming no value.
	other, _ := age.GenerateX25519Identity()
	_, err = LoadWith(t.Context(), files, Options{Unsealer: AgeUnsealer{Identities: []age.Identity{other}}})
	if err == nil || !strings.Contains(err.Error(), "app.yaml:6:5: spec.encryptedData.password: cannot decrypt") || strings.Contains(err.Error(), "hunter2") {
		t.Fatalf("wrong key: %v", err)
	}
}
