package testenv_test

import (
	"os"
	"testing"
	"time"

	"github.com/licenseops/licenseops/internal/testenv"
)

func TestZZHang(t *testing.T) {
	if os.Getenv("TESTENV_HANG") == "" {
		t.Skip()
	}
	testenv.Postgres(t, migrate)
	testenv.Redis(t)
	s := testenv.PostgresServer(t)
	s.Kill()
	s.Start()
	testenv.RedisServer(t).Stop()
	testenv.RedisServer(t).Start()
	t.Log("ready")
	time.Sleep(time.Hour)
}
