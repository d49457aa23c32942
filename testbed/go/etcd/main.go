// Command etcd is the etcd server the test bed's kube-apiserver stores into.
// It wraps etcdmain the way etcd's own main package does, pinned by go.mod to
// the version Kubernetes v1.34.4 is released with.
package main

import (
	"os"

	"go.etcd.io/etcd/server/v3/etcdmain"
)

func main() {
	etcdmain.Main(os.Args)
}
