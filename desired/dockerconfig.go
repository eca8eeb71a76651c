package desired

import (
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"slices"
	"strings"
)

// dockerConfig reads the registry credentials of an image pull Secret:
// .dockerconfigjson ({"auths": {HOST: {username, password} or {auth}}}, type
// kubernetes.io/dockerconfigjson) or the older .dockercfg ({HOST: ...}).
// Hosts lose their scheme and path (https://index.docker.io/v1/ is
// index.docker.io); docker.io's index stands for docker.io.
func dockerConfig(s Secret) ([]RegistryAuth, error) {
	type entry struct {
		Username string `json:"username"`
		Password string `json:"password"`
		Auth     string `json:"auth"`
	}
	var auths map[string]entry
	switch {
	case s.Data[".dockerconfigjson"] != nil:
		var cfg struct {
			Auths map[string]entry `json:"auths"`
		}
		if err := json.Unmarshal(s.Data[".dockerconfigjson"], &cfg); err != nil {
			return nil, fmt.Errorf(".dockerconfigjson is not JSON of the form {\"auths\": {HOST: {...}}}")
		}
		auths = cfg.Auths
	case s.Data[".dockercfg"] != nil:
		if err := json.Unmarshal(s.Data[".dockercfg"], &auths); err != nil {
			return nil, fmt.Errorf(".dockercfg is not JSON of the form {HOST: {...}}")
		}
	case s.Sealed && len(s.Data) == 0:
		return nil, nil // loaded without the cluster's key: checked where it is
	default:
		return nil, errors.New("has no .dockerconfigjson (type kubernetes.io/dockerconfigjson) to pull images with")
	}
	var out []RegistryAuth
	for host, e := range auths {
		if e.Auth != "" {
			b, err := base64.StdEncoding.DecodeString(e.Auth)
			if err != nil {
				return nil, fmt.Errorf("the auth of %q is not base64 user:password", host)
			}
			e.Username, e.Password, _ = strings.Cut(string(b), ":")
		}
		h := strings.TrimPrefix(strings.TrimPrefix(host, "https://"), "http://")
		h, _, _ = strings.Cut(h, "/")
		if h == "index.docker.io" || h == "registry-1.docker.io" {
			h = "docker.io"
		}
		out = append(out, RegistryAuth{Host: h, Username: e.Username, Password: e.Password})
	}
	slices.SortFunc(out, func(a, b RegistryAuth) int { return strings.Compare(a.Host, b.Host) })
	return out, nil
}
