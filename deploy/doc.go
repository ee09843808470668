// Package deploy holds Latchkey's deployment files: the container image
// recipe, docker compose, the Kubernetes kustomize base, the Prometheus
// scrape configuration and alert rules, and the Grafana dashboard. It has
// no code; its tests check the files against the latchkey binary and the
// real tools (kustomize, promtool). See README.md.
package deploy
