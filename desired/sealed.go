package desired

import (
	"bytes"
	"encoding/base64"
	"fmt"
	"io"
	"strings"

	"filippo.io/age"
)

// Unsealer decrypts the values of SealedSecrets.
type Unsealer interface {
	Unseal(ciphertext []byte) ([]byte, error)
}

// AgeUnsealer decrypts with age identities (the cluster's private key).
type AgeUnsealer struct{ Identities []age.Identity }

// MaxSecretBytes caps one decrypted value.
const MaxSecretBytes = 1 << 20

// Unseal implements Unsealer.
func (u AgeUnsealer) Unseal(ct []byte) ([]byte, error) {
	r, err := age.Decrypt(bytes.NewReader(ct), u.Identities...)
	if err != nil {
		return nil, err
	}
	b, err := io.ReadAll(io.LimitReader(r, MaxSecretBytes+1))
	if err != nil {
		return nil, err
	}
	if len(b) > MaxSecretBytes {
		return nil, fmt.Errorf("value larger than %d bytes", MaxSecretBytes)
	}
	return b, nil
}

// Seal encrypts value to the recipient (the cluster's public key) and returns
// it as a SealedSecret's encryptedData value: base64 of the age ciphertext.
func Seal(recipient age.Recipient, value []byte) (string, error) {
	var buf bytes.Buffer
	w, err := age.Encrypt(&buf, recipient)
	if err != nil {
		return "", err
	}
	if _, err := w.Write(value); err != nil {
		return "", err
	}
	if err := w.Close(); err != nil {
		return "", err
	}
	return base64.StdEncoding.EncodeToString(buf.Bytes()), nil
}

// ParseIdentities reads age identities (the cluster's private key file).
func ParseIdentities(text string) ([]age.Identity, error) {
	return age.ParseIdentities(strings.NewReader(text))
}

func (n *norm) sealed(s k8sSealedSecret, u Unsealer, required bool) Secret {
	out := Secret{Meta: n.meta(s.Metadata), Type: s.Spec.Type, Sealed: true, Data: map[string][]byte{}}
	if out.Type == "" {
		out.Type = "Opaque"
	}
	cts := map[string][]byte{}
	for k, v := range s.Spec.EncryptedData {
		ct, err := base64.StdEncoding.DecodeString(v)
		if err != nil {
			n.fail("spec.encryptedData."+k, "not valid base64")
			continue
		}
		cts[k] = ct
		if u == nil {
			if required {
				n.fail("spec.encryptedData."+k, "cannot be decrypted: this server has no --secret-key (the cluster's key made by baton secret keygen)")
			}
			continue
		}
		pt, err := u.Unseal(ct)
		if err != nil {
			// The error names no value: age errors carry none.
			n.fail("spec.encryptedData."+k, "cannot decrypt with the cluster's key: %v", err)
			continue
		}
		out.Data[k] = pt
	}
	out.Keys = sortedKeys(cts)
	// The ciphertext, not the plaintext, goes into hashes: it is random per
	// seal, so a hash reveals nothing about the value. Whether the values
	// were decrypted goes in too: pods that ran without them roll when they
	// become readable.
	out.digest = hashOf(cts, u != nil)
	return out
}
