// Package protocol is the wire contract between the reconciler and the node
// agents: NATS subjects and the JSON message types carried on them. Every
// message has a version field; a message of another version, or one larger
// than MaxMessageBytes, is refused with a clear error. It holds no logic.
package protocol
