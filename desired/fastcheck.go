package desired

import (
	"bytes"
	"encoding/json"
	"regexp"
	"strconv"
	"strings"
	"sync/atomic"
	"unicode/utf8"
)

// The fast check accepts the common shapes of YAML documents without CUE.
// It is a subset of the schema (desired/schema/schema.cue), never a second
// source of truth: it answers "certainly valid" or "ask CUE", never
// "invalid". A field it does not know, a value of another type, anything
// it is not sure of sends the document to CUE, which gives the verdict and
// the error messages. Every constraint it checks is at least as strict as
// the schema's (TestFastCheckNeverAcceptsWhatCUERefuses compares the two
// on mutated documents). Unifying with CUE costs about 250 µs a document;
// this costs a few.

// rule checks a value decoded from JSON (with UseNumber).
type rule func(v any) bool

// field is one field of a closed struct.
type field struct {
	r        rule
	required bool
}

func opt(r rule) field { return field{r: r} }
func req(r rule) field { return field{r: r, required: true} }

// closed is a struct with exactly the listed fields (the required ones
// present).
func closed(fields map[string]field) rule {
	return func(v any) bool {
		m, ok := v.(map[string]any)
		if !ok {
			return false
		}
		for k, x := range m {
			f, ok := fields[k]
			if !ok || !f.r(x) {
				return false
			}
		}
		for k, f := range fields {
			if _, ok := m[k]; f.required && !ok {
				return false
			}
		}
		return true
	}
}

// str is a string passing every check.
func str(checks ...func(string) bool) rule {
	return func(v any) bool {
		s, ok := v.(string)
		if !ok {
			return false
		}
		for _, c := range checks {
			if !c(s) {
				return false
			}
		}
		return true
	}
}

func matches(re string) func(string) bool { return regexp.MustCompile(re).MatchString }
func notMatches(re string) func(string) bool {
	r := regexp.MustCompile(re)
	return func(s string) bool { return !r.MatchString(s) }
}
func maxRunes(n int) func(string) bool {
	return func(s string) bool { return utf8.RuneCountInString(s) <= n }
}
func nonEmpty(s string) bool { return s != "" }

// oneOf is one of the given strings.
func oneOf(vals ...string) rule {
	return func(v any) bool {
		s, ok := v.(string)
		if !ok {
			return false
		}
		for _, x := range vals {
			if s == x {
				return true
			}
		}
		return false
	}
}

// integer is an int within [lo, hi]: a JSON number with only digits (CUE
// writes a float with a dot or an exponent).
func integer(lo, hi int64) rule {
	return func(v any) bool {
		n, ok := v.(json.Number)
		if !ok || strings.ContainsAny(string(n), ".eE") {
			return false
		}
		i, err := strconv.ParseInt(string(n), 10, 64)
		return err == nil && i >= lo && i <= hi
	}
}

const maxInt = int64(^uint64(0) >> 1)

func boolean(v any) bool { _, ok := v.(bool); return ok }

// list is a list of at least min elements, each passing elem.
func list(elem rule, min int) rule {
	return func(v any) bool {
		l, ok := v.([]any)
		if !ok || len(l) < min {
			return false
		}
		for _, x := range l {
			if !elem(x) {
				return false
			}
		}
		return true
	}
}

// anyOf passes when one of rs does.
func anyOf(rs ...rule) rule {
	return func(v any) bool {
		for _, r := range rs {
			if r(v) {
				return true
			}
		}
		return false
	}
}

// stringMap is {[K]: string}, every key passing keyOK (nil: any key).
func stringMap(keyOK func(string) bool) rule {
	return func(v any) bool {
		m, ok := v.(map[string]any)
		if !ok {
			return false
		}
		for k, x := range m {
			if _, ok := x.(string); !ok || (keyOK != nil && !keyOK(k)) {
				return false
			}
		}
		return true
	}
}

// The schema's definitions that the fast check knows, as strict as
// schema.cue's.
var (
	fcName      = str(matches(`^[a-z0-9]([-a-z0-9]*[a-z0-9])?$`), maxRunes(63))
	fcSubdomain = str(matches(`^[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*$`), maxRunes(253))
	fcQuantity  = anyOf(func(v any) bool { n, ok := v.(json.Number); return ok && n != "" },
		str(matches(`^[+]?([0-9]+(\.[0-9]*)?|\.[0-9]+)([eE][-+]?[0-9]+|m|k|M|G|T|P|E|Ki|Mi|Gi|Ti|Pi|Ei)?$`)))
	fcIntOrPercent = anyOf(integer(0, maxInt), str(matches(`^[0-9]+%$`)))
	fcPort         = integer(1, 65535)
	fcArg          = str(notMatches(`\x00`))
	fcSeconds      = integer(0, 86400)
	fcSecondsPos   = integer(1, 86400)

	fcLabels     = stringMap(nil)
	fcObjectMeta = closed(map[string]field{
		"name":        req(fcName),
		"namespace":   opt(str(matches(`^[a-z0-9]([-a-z0-9]*[a-z0-9])?$`), maxRunes(63), notMatches(`^job$`))),
		"labels":      opt(fcLabels),
		"annotations": opt(fcLabels),
	})
	fcTemplateMeta = closed(map[string]field{"labels": opt(fcLabels), "annotations": opt(fcLabels)})
	fcKeySelector  = closed(map[string]field{"name": req(fcSubdomain), "key": req(str(nonEmpty)), "optional": opt(boolean)})
	fcEnvVar       = closed(map[string]field{
		"name":  req(str(matches(`^[^=\x00]+$`))),
		"value": opt(str(notMatches(`\x00`))),
		"valueFrom": opt(closed(map[string]field{
			"configMapKeyRef": opt(fcKeySelector),
			"secretKeyRef":    opt(fcKeySelector),
		})),
	})
	fcContainerPort = closed(map[string]field{
		"containerPort": req(fcPort),
		"hostPort":      opt(fcPort),
		"name":          opt(str(matches(`^[a-z0-9]([-a-z0-9]*[a-z0-9])?$`), maxRunes(15))),
		"protocol":      opt(oneOf("TCP", "UDP")),
	})
	fcResourceList = closed(map[string]field{"cpu": opt(fcQuantity), "memory": opt(fcQuantity)})
	fcProbe        = closed(map[string]field{
		"httpGet": opt(closed(map[string]field{
			"path":   opt(str(matches(`^/[^\s]*$`))),
			"port":   req(anyOf(fcPort, fcName)),
			"scheme": opt(oneOf("HTTP", "HTTPS")),
		})),
		"tcpSocket":           opt(closed(map[string]field{"port": req(anyOf(fcPort, fcName))})),
		"initialDelaySeconds": opt(fcSeconds),
		"periodSeconds":       opt(fcSecondsPos),
		"timeoutSeconds":      opt(fcSecondsPos),
		"successThreshold":    opt(fcSecondsPos),
		"failureThreshold":    opt(fcSecondsPos),
	})
	fcVolumeMount = closed(map[string]field{
		"name":      req(fcName),
		"mountPath": req(str(matches(`^/`))),
		"readOnly":  opt(boolean),
	})
	fcContainer = closed(map[string]field{
		"name":            req(fcName),
		"image":           req(str(matches(`^[^\s]+$`))),
		"imagePullPolicy": opt(oneOf("Always", "IfNotPresent", "Never")),
		"command":         opt(list(fcArg, 0)),
		"args":            opt(list(fcArg, 0)),
		"workingDir":      opt(fcArg),
		"env":             opt(list(fcEnvVar, 0)),
		"ports":           opt(list(fcContainerPort, 0)),
		"resources": opt(closed(map[string]field{
			"requests": opt(fcResourceList),
			"limits":   opt(fcResourceList),
		})),
		"livenessProbe":  opt(fcProbe),
		"readinessProbe": opt(fcProbe),
		"startupProbe":   opt(fcProbe),
		"volumeMounts":   opt(list(fcVolumeMount, 0)),
	})
	fcVolume = closed(map[string]field{
		"name":                  req(fcName),
		"emptyDir":              opt(closed(map[string]field{"medium": opt(oneOf("", "Memory")), "sizeLimit": opt(fcQuantity)})),
		"configMap":             opt(closed(map[string]field{"name": req(fcSubdomain), "optional": opt(boolean)})),
		"secret":                opt(closed(map[string]field{"secretName": req(fcSubdomain), "optional": opt(boolean)})),
		"persistentVolumeClaim": opt(closed(map[string]field{"claimName": req(fcSubdomain), "readOnly": opt(boolean)})),
	})
	fcLabelSelector = closed(map[string]field{"matchLabels": opt(fcLabels)})
	fcPodSpec       = closed(map[string]field{
		"containers":                    req(list(fcContainer, 1)),
		"volumes":                       opt(list(fcVolume, 0)),
		"restartPolicy":                 opt(oneOf("Always", "OnFailure", "Never")),
		"nodeSelector":                  opt(fcLabels),
		"terminationGracePeriodSeconds": opt(fcSeconds),
	})
	fcDeployment = closed(map[string]field{
		"apiVersion": req(oneOf("apps/v1")),
		"kind":       req(oneOf("Deployment")),
		"metadata":   req(fcObjectMeta),
		"spec": req(closed(map[string]field{
			"replicas": opt(integer(0, 1000)),
			"selector": opt(fcLabelSelector),
			"template": req(closed(map[string]field{"metadata": opt(fcTemplateMeta), "spec": req(fcPodSpec)})),
			"strategy": opt(closed(map[string]field{
				"type": opt(oneOf("RollingUpdate", "Recreate")),
				"rollingUpdate": opt(closed(map[string]field{
					"maxSurge":       opt(fcIntOrPercent),
					"maxUnavailable": opt(fcIntOrPercent),
				})),
			})),
			"minReadySeconds":         opt(integer(0, maxInt)),
			"revisionHistoryLimit":    opt(integer(0, maxInt)),
			"progressDeadlineSeconds": opt(integer(1, maxInt)),
		})),
	})
	fcConfigMap = closed(map[string]field{
		"apiVersion": req(oneOf("v1")),
		"kind":       req(oneOf("ConfigMap")),
		"metadata":   req(fcObjectMeta),
		"data":       opt(stringMap(matches(`^[-._a-zA-Z0-9]+$`))),
		"immutable":  opt(boolean),
	})
	fastKinds = map[string]rule{"apps/v1 Deployment": fcDeployment, "v1 ConfigMap": fcConfigMap}
)

// fastValid reports whether the JSON of a YAML document is certainly valid
// against the schema; false means only that CUE must judge it.
func fastValid(apiVersion, kind string, j []byte) bool {
	r, ok := fastKinds[apiVersion+" "+kind]
	if !ok || fastCheckOff {
		return false
	}
	dec := json.NewDecoder(bytes.NewReader(j))
	dec.UseNumber()
	var v any
	if err := dec.Decode(&v); err != nil || dec.More() {
		return false
	}
	if !r(v) {
		return false
	}
	fastAccepted.Add(1)
	return true
}

// fastAccepted counts the documents the fast check accepted.
var fastAccepted atomic.Int64

// fastCheckOff sends every document to CUE (tests compare the two ways).
var fastCheckOff = false
