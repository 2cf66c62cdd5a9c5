// Command kstatus prints the kstatus verdict (the health rules Flux and kpt apply to any resource) for one
// Kubernetes object read as JSON on stdin, using the upstream sigs.k8s.io/cli-utils/pkg/kstatus/status
// library. It prints one JSON line: {"status":"Current|InProgress|Failed|...","message":"..."}.
package main

import (
	"encoding/json"
	"fmt"
	"io"
	"os"

	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"sigs.k8s.io/cli-utils/pkg/kstatus/status"
)

type verdict struct {
	Status  string `json:"status"`
	Message string `json:"message"`
}

func main() {
	if err := run(os.Stdin, os.Stdout); err != nil {
		fmt.Fprintln(os.Stderr, "kstatus:", err)
		os.Exit(1)
	}
}

func run(in io.Reader, out io.Writer) error {
	data, err := io.ReadAll(in)
	if err != nil {
		return fmt.Errorf("reading the object: %w", err)
	}
	// Kubernetes' own JSON decoding keeps integers as int64, as kstatus expects them.
	object := &unstructured.Unstructured{}
	if err := object.UnmarshalJSON(data); err != nil {
		return fmt.Errorf("the input is not one Kubernetes object as JSON: %w", err)
	}
	result, err := status.Compute(object)
	if err != nil {
		return fmt.Errorf("computing the status: %w", err)
	}
	return json.NewEncoder(out).Encode(verdict{Status: result.Status.String(), Message: result.Message})
}
