// Package testenv gives tests the real parts they run against: the socket of
// the machine's containerd (skipping, or failing with BATON_E2E=1, when none
// answers) and an OCI archive of the hello example image, built once per test
// binary; and the waits: WaitFor (the one polling helper) and WaitPasses
// (give a control loop passes to act, or not, instead of a fixed sleep).
package testenv
