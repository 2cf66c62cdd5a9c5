// Command etcd is upstream etcd's own entry point, built from its Go module at the version
// k8s.io/kubernetes requires, so the test control plane needs no release download.
package main

import (
	"os"

	"go.etcd.io/etcd/server/v3/etcdmain"
)

func main() {
	etcdmain.Main(os.Args)
}
