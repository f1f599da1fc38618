package main

import (
	"bytes"
	"crypto/rand"
	"encoding/base64"
	"os"
	"strings"
	"testing"

	"github.com/ordo-go/ordo/internal/kafkatest"
	"github.com/ordo-go/ordo/jobs"
)

func TestInvoicesAreCiphertextOnTheBrokerAndPlaintextToTheWorker(t *testing.T) {
	key := make([]byte, 32)
	if _, err := rand.Read(key); err != nil {
		t.Fatal(err)
	}
	t.Setenv(keyEnv, base64.StdEncoding.EncodeToString(key))
	env := kafkatest.New(t)
	topic := env.Topic(t, 2)
	var out bytes.Buffer
	if err := run(&out, env.Brokers, topic); err != nil {
		t.Fatalf("%v\n%s", err, out.String())
	}
	for _, want := range []string{
		"enqueue without a tenant refused: no tenant in the context",
		"tenant acme: invoice of 1999 cents for Ada Lovelace, card 4242-4242-4242-4242",
		"tenant globex: invoice of 4200 cents for Grace Hopper, card 5555-5555-5555-4444",
		"tenant acme: invoice of 500 cents for Ada Lovelace, card 4242-4242-4242-4242",
	} {
		if !strings.Contains(out.String(), want) {
			t.Errorf("the worker did not see %q; output:\n%s", want, out.String())
		}
	}

	records := env.ReadAll(t, topic)
	if len(records) != 3 {
		t.Fatalf("the topic holds %d records, want the 3 invoices (the one without a tenant refused)", len(records))
	}
	tenants := map[string]int{}
	for _, r := range records {
		if v, err := jobs.EnvelopeVersionOf(r.Value); err != nil || v != jobs.EnvelopeVersion {
			t.Errorf("record %d/%d is not a job envelope (%d, %v)", r.Partition, r.Offset, v, err)
		}
		for _, plain := range []string{"4242-4242", "5555-5555", "Ada Lovelace", "Grace Hopper", "customer", "card"} {
			if bytes.Contains(r.Value, []byte(plain)) {
				t.Errorf("record %d/%d carries %q in plaintext: %q", r.Partition, r.Offset, plain, r.Value)
			}
		}
		for _, h := range r.Headers {
			switch h.Key {
			case headerTenant:
				tenants[string(h.Value)]++
			case headerSealed:
				if string(h.Value) != "aes-256-gcm" {
					t.Errorf("record %d/%d: header sealed=%q", r.Partition, r.Offset, h.Value)
				}
			}
		}
	}
	if tenants["acme"] != 2 || tenants["globex"] != 1 {
		t.Errorf("the records' tenant headers count %v, want acme 2 and globex 1", tenants)
	}
}

func TestTheKeyIsNamedWhenMissingOrWrong(t *testing.T) {
	for _, c := range []struct {
		name, value, mention string
	}{
		{"missing", "", "ORDO_PAYLOAD_KEY is not set"},
		{"not base64", "not base64!", "ORDO_PAYLOAD_KEY is not base64"},
		{"16 bytes", base64.StdEncoding.EncodeToString(make([]byte, 16)), "ORDO_PAYLOAD_KEY must be 32 bytes (AES-256) once decoded, not 16"},
	} {
		t.Run(c.name, func(t *testing.T) {
			t.Setenv(keyEnv, c.value)
			if c.value == "" {
				os.Unsetenv(keyEnv) // t.Setenv restores it
			}
			_, err := NewEncryption()
			if err == nil || !strings.Contains(err.Error(), c.mention) {
				t.Errorf("NewEncryption returned %v, want an error saying %q", err, c.mention)
			}
		})
	}
}
