// Package natsserver holds the settings of the NATS server Baton embeds
// (baton up, and every test that needs one): the listen address, JetStream
// and where it stores, and the limits every Baton message lives under. The
// tests start the same server as production, with only the address and the
// store directory their own.
package natsserver
