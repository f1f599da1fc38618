package kafka_test

import (
	"bytes"
	"fmt"
	"log/slog"
	"strings"
	"testing"

	"github.com/ordo-go/ordo/kafka"
)

func TestSASLNeverShowsItsPassword(t *testing.T) {
	const pw = "hunter2-Zq9"
	s := kafka.SASL{Mechanism: kafka.ScramSHA512, Username: "ordo", Password: pw}
	var buf bytes.Buffer
	slog.New(slog.NewTextHandler(&buf, nil)).Info("x", "sasl", s, "ptr", &s, "security", kafka.Security{SASL: &s})
	shown := strings.Join([]string{buf.String(), s.String(), fmt.Sprint(s), fmt.Sprintf("%v %+v %#v %s", s, s, s, &s)}, "\n")
	if strings.Contains(shown, pw) {
		t.Fatalf("the password shows:\n%s", shown)
	}
	if !strings.Contains(shown, "ordo") || !strings.Contains(shown, "SCRAM-SHA-512") {
		t.Errorf("the user or mechanism does not show:\n%s", shown)
	}
}

func TestSecurityValidateNamesTheProblem(t *testing.T) {
	cases := []struct {
		sec  *kafka.Security
		want string // "" for valid
	}{
		{nil, ""},
		{&kafka.Security{}, ""},
		{&kafka.Security{SASL: &kafka.SASL{Mechanism: kafka.Plain, Username: "u", Password: "p"}}, ""},
		{&kafka.Security{SASL: &kafka.SASL{Mechanism: kafka.ScramSHA256, Username: "u", Password: "p"}}, ""},
		{&kafka.Security{SASL: &kafka.SASL{Mechanism: kafka.ScramSHA512, Username: "u", Password: "p"}}, ""},
		{&kafka.Security{SASL: &kafka.SASL{Mechanism: "GSSAPI", Username: "u", Password: "p"}}, `"GSSAPI" is not PLAIN`},
		{&kafka.Security{SASL: &kafka.SASL{Username: "u", Password: "p"}}, "Mechanism is empty"},
		{&kafka.Security{SASL: &kafka.SASL{Mechanism: kafka.Plain, Password: "p"}}, "Username is empty"},
	}
	for _, c := range cases {
		err := c.sec.Validate()
		switch {
		case c.want == "" && err != nil:
			t.Errorf("%v: %v", c.sec, err)
		case c.want != "" && (err == nil || !strings.Contains(err.Error(), c.want)):
			t.Errorf("%v: error %v, want one saying %q", c.sec, err, c.want)
		}
	}
	if _, err := kafka.NewConsumer(kafka.ConsumerConfig{Brokers: []string{"b:9092"}, Group: "g", Topics: []string{"t"},
		Security: &kafka.Security{SASL: &kafka.SASL{Mechanism: "X", Username: "u"}}}); err == nil {
		t.Error("NewConsumer accepted an unknown SASL mechanism")
	}
	if _, err := kafka.NewProducer(kafka.ProducerConfig{Brokers: []string{"b:9092"},
		Security: &kafka.Security{SASL: &kafka.SASL{Mechanism: "X", Username: "u"}}}); err == nil {
		t.Error("NewProducer accepted an unknown SASL mechanism")
	}
}
