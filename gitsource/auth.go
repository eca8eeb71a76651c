package gitsource

import (
	"errors"
	"fmt"
	"net"
	"net/url"
	"os"
	"path/filepath"
	"strings"

	"github.com/go-git/go-git/v5/plumbing/transport"
	githttp "github.com/go-git/go-git/v5/plumbing/transport/http"
	gitssh "github.com/go-git/go-git/v5/plumbing/transport/ssh"
	"golang.org/x/crypto/ssh"
	"golang.org/x/crypto/ssh/knownhosts"
)

// Auth holds the credentials for a remote. They come from files or
// environment variables named on the command line, never from a
// repository, and are never printed: String hides them.
type Auth struct {
	// Username and Password for HTTP(S) basic auth; a token goes in Password.
	Username, Password string
	// CABundle is PEM certificates trusted for HTTPS besides the system's.
	CABundle []byte
	// SSHKey is a PEM private key, SSHPassphrase its passphrase, SSHUser the
	// login (default "git").
	SSHKey        []byte
	SSHPassphrase string
	SSHUser       string
	// KnownHosts files check the server's host key (default ~/.ssh/known_hosts).
	KnownHosts []string
}

// String never shows a secret.
func (a Auth) String() string {
	var parts []string
	if a.Username != "" || a.Password != "" {
		parts = append(parts, "http basic auth for "+a.Username)
	}
	if len(a.SSHKey) > 0 {
		parts = append(parts, "ssh key")
	}
	if len(parts) == 0 {
		return "no credentials"
	}
	return strings.Join(parts, ", ")
}

func isSSH(url string) bool {
	if strings.HasPrefix(url, "ssh://") {
		return true
	}
	// scp-like: user@host:path
	at, colon := strings.Index(url, "@"), strings.Index(url, ":")
	return !strings.Contains(url, "://") && at > 0 && colon > at
}

// method returns go-git's auth for url, or nil for none.
func (a Auth) method(url string) (transport.AuthMethod, error) {
	if isSSH(url) {
		user := a.SSHUser
		if user == "" {
			user = "git"
		}
		if len(a.SSHKey) == 0 {
			return nil, errors.New("an ssh remote needs a private key (--git-ssh-key)")
		}
		keys, err := gitssh.NewPublicKeys(user, a.SSHKey, a.SSHPassphrase)
		if err != nil {
			return nil, fmt.Errorf("ssh key: %w", redactErr(err, a))
		}
		cb, err := a.hostKeyCallback()
		if err != nil {
			return nil, err
		}
		keys.HostKeyCallback = cb
		return keys, nil
	}
	if a.Username != "" || a.Password != "" {
		user := a.Username
		if user == "" {
			user = "git" // tokens: any non-empty user name
		}
		return &githttp.BasicAuth{Username: user, Password: a.Password}, nil
	}
	return nil, nil
}

func (a Auth) hostKeyCallback() (ssh.HostKeyCallback, error) {
	files := a.KnownHosts
	if len(files) == 0 {
		home, err := os.UserHomeDir()
		if err != nil {
			return nil, fmt.Errorf("known_hosts: %w", err)
		}
		files = []string{filepath.Join(home, ".ssh", "known_hosts")}
	}
	cb, err := knownhosts.New(files...)
	if err != nil {
		return nil, fmt.Errorf("known_hosts (host keys are always checked; add the server with ssh-keyscan): %w", err)
	}
	return func(host string, remote net.Addr, key ssh.PublicKey) error {
		err := cb(host, remote, key)
		var ke *knownhosts.KeyError
		if errors.As(err, &ke) {
			if len(ke.Want) == 0 {
				return fmt.Errorf("host key of %s is not in known_hosts", host)
			}
			return fmt.Errorf("host key of %s does not match known_hosts: possible man-in-the-middle", host)
		}
		return err
	}, nil
}

// redactErr removes secrets from an error's text: the passwords of a, and
// of the userinfo of any URL given.
func redactErr(err error, a Auth, urls ...string) error {
	if err == nil {
		return nil
	}
	msg := err.Error()
	secrets := []string{a.Password, a.SSHPassphrase}
	for _, raw := range urls {
		if u, perr := url.Parse(raw); perr == nil && u.User != nil {
			p, _ := u.User.Password()
			secrets = append(secrets, p)
			if p != "" {
				secrets = append(secrets, url.QueryEscape(p))
			}
		}
	}
	for _, s := range secrets {
		if len(s) >= 4 {
			msg = strings.ReplaceAll(msg, s, "[redacted]")
		}
	}
	if msg == err.Error() {
		return err
	}
	return errors.New(msg)
}
