package join

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"time"

	"github.com/nats-io/nats.go/jetstream"

	"github.com/batonhq/baton/internal/identity"
)

// Bucket is the KV bucket of join tokens and issued credentials. Only
// servers may write it (the roles give no one else JetStream writes).
const Bucket = "baton-join"

// Store keeps join tokens (hashed) and the record of issued credentials.
type Store struct{ kv jetstream.KeyValue }

// OpenStore opens (creating it if needed) the join bucket.
func OpenStore(ctx context.Context, js jetstream.JetStream, replicas int) (*Store, error) {
	kv, err := js.CreateOrUpdateKeyValue(ctx, jetstream.KeyValueConfig{Bucket: Bucket, Replicas: replicas, History: 1})
	if err != nil {
		return nil, fmt.Errorf("open %s bucket: %w", Bucket, err)
	}
	return &Store{kv: kv}, nil
}

// TokenRecord is what the store keeps of a token.
type TokenRecord struct {
	Hash    string        `json:"hash"`
	Role    identity.Role `json:"role"`
	Created time.Time     `json:"created"`
	Expires time.Time     `json:"expires"`
	By      string        `json:"by,omitempty"`
	// Node, when set, is the only name the token joins as (a node pool's
	// machine: a token leaked from it cannot join as another node).
	Node string `json:"node,omitempty"`
}

// Credential is the record of a credential issued to a joined machine or
// operator: enough to list it, renew it and revoke it.
type Credential struct {
	PublicKey string        `json:"publicKey"`
	Role      identity.Role `json:"role"`
	Name      string        `json:"name"`
	Joined    time.Time     `json:"joined"`
	Expires   time.Time     `json:"expires,omitzero"`
}

func tokenKey(id string) string                      { return "token." + id }
func nameKey(role identity.Role, name string) string { return "name." + string(role) + "." + name }

// claimName records that name (of role) holds the key pub; a name held
// already is refused.
func (s *Store) claimName(ctx context.Context, role identity.Role, name, pub string) error {
	if _, err := s.kv.Create(ctx, nameKey(role, name), []byte(pub)); err != nil {
		if errors.Is(err, jetstream.ErrKeyExists) {
			return fmt.Errorf("%w: %s %s holds a credential: remove it first (baton node rm %s)", ErrNameTaken, role, name, name)
		}
		return err
	}
	return nil
}

func (s *Store) releaseName(ctx context.Context, role identity.Role, name string) {
	_ = s.kv.Delete(ctx, nameKey(role, name))
}

// nameHolder is the key that name (of role) holds.
func (s *Store) nameHolder(ctx context.Context, role identity.Role, name string) (string, bool, error) {
	e, err := s.kv.Get(ctx, nameKey(role, name))
	if errors.Is(err, jetstream.ErrKeyNotFound) {
		return "", false, nil
	}
	if err != nil {
		return "", false, err
	}
	return string(e.Value()), true, nil
}
func credKey(pub string) string { return "cred." + pub }
func (s *Store) put(ctx context.Context, key string, v any) error {
	b, err := json.Marshal(v)
	if err != nil {
		return err
	}
	_, err = s.kv.Put(ctx, key, b)
	return err
}

// createToken stores a new token for role, valid for ttl.
func (s *Store) createToken(ctx context.Context, fp string, role identity.Role, ttl time.Duration, by, node string, now time.Time) (Token, error) {
	t, err := newToken(fp)
	if err != nil {
		return Token{}, err
	}
	rec := TokenRecord{Hash: t.hash(), Role: role, Created: now, Expires: now.Add(ttl), By: by, Node: node}
	b, err := json.Marshal(rec)
	if err != nil {
		return Token{}, err
	}
	if _, err := s.kv.Create(ctx, tokenKey(t.ID), b); err != nil {
		return Token{}, fmt.Errorf("store the token: %w", err)
	}
	return t, nil
}

// redeem uses the token up: it matches, has not expired, and this call is
// the one that removed it (a token used twice at once works once).
func (s *Store) redeem(ctx context.Context, t Token, now time.Time) (TokenRecord, error) {
	e, err := s.kv.Get(ctx, tokenKey(t.ID))
	if errors.Is(err, jetstream.ErrKeyNotFound) {
		return TokenRecord{}, fmt.Errorf("%w: unknown or already used", ErrBadToken)
	}
	if err != nil {
		return TokenRecord{}, err
	}
	var rec TokenRecord
	if err := json.Unmarshal(e.Value(), &rec); err != nil {
		return TokenRecord{}, fmt.Errorf("token record %s: %w", t.ID, err)
	}
	if !t.matches(rec.Hash) {
		return TokenRecord{}, fmt.Errorf("%w: wrong secret", ErrBadToken)
	}
	if now.After(rec.Expires) {
		_ = s.kv.Delete(ctx, tokenKey(t.ID), jetstream.LastRevision(e.Revision()))
		return TokenRecord{}, fmt.Errorf("%w: expired at %s", ErrBadToken, rec.Expires.UTC().Format(time.RFC3339))
	}
	if err := s.kv.Delete(ctx, tokenKey(t.ID), jetstream.LastRevision(e.Revision())); err != nil {
		return TokenRecord{}, fmt.Errorf("%w: already used", ErrBadToken)
	}
	return rec, nil
}

// record records c as holding its name (Authority.RecordLocal revokes a
// key that held it before).
func (s *Store) record(ctx context.Context, c Credential) error {
	if _, err := s.kv.Put(ctx, nameKey(c.Role, c.Name), []byte(c.PublicKey)); err != nil {
		return err
	}
	return s.put(ctx, credKey(c.PublicKey), c)
}

// dropTokensFor deletes the unused tokens bound to node, and says how many.
func (s *Store) dropTokensFor(ctx context.Context, node string) (int, error) {
	lister, err := s.kv.ListKeysFiltered(ctx, tokenKey("*"))
	if err != nil {
		return 0, err
	}
	n := 0
	for k := range lister.Keys() {
		e, err := s.kv.Get(ctx, k)
		if err != nil {
			continue // used or removed meanwhile
		}
		var rec TokenRecord
		if json.Unmarshal(e.Value(), &rec) == nil && rec.Node == node {
			if err := s.kv.Delete(ctx, k, jetstream.LastRevision(e.Revision())); err == nil {
				n++
			}
		}
	}
	return n, nil
}

// Credentials lists the credentials issued by joining.
func (s *Store) Credentials(ctx context.Context) ([]Credential, error) {
	lister, err := s.kv.ListKeysFiltered(ctx, credKey("*"))
	if err != nil {
		return nil, err
	}
	var out []Credential
	for k := range lister.Keys() {
		e, err := s.kv.Get(ctx, k)
		if err != nil {
			continue // removed meanwhile
		}
		var c Credential
		if json.Unmarshal(e.Value(), &c) == nil {
			out = append(out, c)
		}
	}
	return out, nil
}

func (s *Store) credential(ctx context.Context, pub string) (Credential, uint64, bool, error) {
	e, err := s.kv.Get(ctx, credKey(pub))
	if errors.Is(err, jetstream.ErrKeyNotFound) {
		return Credential{}, 0, false, nil
	}
	if err != nil {
		return Credential{}, 0, false, err
	}
	var c Credential
	if err := json.Unmarshal(e.Value(), &c); err != nil {
		return Credential{}, 0, false, err
	}
	return c, e.Revision(), true, nil
}

// createCred records c; a record of its key already there is refused.
func (s *Store) createCred(ctx context.Context, c Credential) error {
	b, err := json.Marshal(c)
	if err != nil {
		return err
	}
	if _, err := s.kv.Create(ctx, credKey(c.PublicKey), b); err != nil {
		if errors.Is(err, jetstream.ErrKeyExists) {
			return fmt.Errorf("%w: this key holds a credential already", ErrBadRequest)
		}
		return err
	}
	return nil
}

// updateCred replaces the record of c's key if it is still at rev.
func (s *Store) updateCred(ctx context.Context, c Credential, rev uint64) error {
	b, err := json.Marshal(c)
	if err != nil {
		return err
	}
	_, err = s.kv.Update(ctx, credKey(c.PublicKey), b, rev)
	return err
}
