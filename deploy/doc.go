// Package deploy holds the tests of the deployment: the files of this
// folder, compose.yaml, the Dockerfile and nginx.conf, run the way
// production runs them. compose.yaml is read with compose-go and run on a
// private Docker engine; Debian's nginx runs nginx.conf in front of the
// program; certbot's and pgBackRest's scripts and the systemd units run
// for real. The program is the binary, built once per test run and
// started as a process of its own: these tests know of it only what it
// prints, its -print-config included, and never call package main.
//
// The package has no code but its tests.
package deploy
