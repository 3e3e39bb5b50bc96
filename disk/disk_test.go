package disk_test

import (
	"bytes"
	"errors"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/symcache/symcache/disk"
	"github.com/symcache/symcache/exchangeinfo"
	"github.com/symcache/symcache/internal/fixtures"
)

func snapshot(t *testing.T, m exchangeinfo.Market, file string, at time.Time) *exchangeinfo.Snapshot {
	t.Helper()
	s, err := exchangeinfo.Parse(m, fixtures.Read(t, "binance/"+file), at)
	if err != nil {
		t.Fatal(err)
	}
	return s
}

func TestStore_SaveLoad(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "state", "nested")
	st, err := disk.New(dir)
	if err != nil {
		t.Fatalf("New(%q) = %v", dir, err)
	}
	at := time.Date(2026, 11, 26, 9, 0, 0, 123456789, time.UTC)
	for _, tt := range []struct {
		m    exchangeinfo.Market
		file string
	}{
		{exchangeinfo.Spot, "spot_exchangeinfo.json"},
		{exchangeinfo.USDM, "usdm_exchangeinfo.json"}, // pretty-printed: bytes must survive as they are
		{exchangeinfo.COINM, "coinm_exchangeinfo.json"},
	} {
		want := snapshot(t, tt.m, tt.file, at)
		if err := st.Save(want); err != nil {
			t.Fatalf("Save(%s) = %v", tt.m, err)
		}
		got, err := st.Load(tt.m)
		if err != nil {
			t.Fatalf("Load(%s) = %v", tt.m, err)
		}
		if !bytes.Equal(got.Body(), want.Body()) || !got.FetchedAt().Equal(at) || got.ETag() != want.ETag() {
			t.Errorf("Load(%s) = %d bytes fetched %v, want the saved %d bytes fetched %v", tt.m, len(got.Body()), got.FetchedAt(), len(want.Body()), at)
		}
	}
	// A newer save replaces the older, and leaves no temporary files behind.
	newer := snapshot(t, exchangeinfo.Spot, "spot_testnet_exchangeinfo_2021-07-11.json", at.Add(time.Hour))
	if err := st.Save(newer); err != nil {
		t.Fatal(err)
	}
	if got, _ := st.Load(exchangeinfo.Spot); got == nil || got.Len() != 20 {
		t.Errorf("Load(spot) after a second Save did not return the newer snapshot")
	}
	entries, _ := os.ReadDir(dir)
	if len(entries) != 3 {
		var names []string
		for _, e := range entries {
			names = append(names, e.Name())
		}
		t.Errorf("folder holds %v, want exactly spot.json, usdm.json, coinm.json", names)
	}
}

func TestStore_LoadRejects(t *testing.T) {
	dir := t.TempDir()
	st, err := disk.New(dir)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := st.Load(exchangeinfo.Spot); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("Load of a missing file = %v, want os.ErrNotExist", err)
	}
	good := fixtures.Read(t, "binance/spot_testnet_exchangeinfo_2021-07-11.json")
	for _, tt := range []struct{ name, content string }{
		{"empty", ""},
		{"no header", string(good)},
		{"other market", `{"market":"usdm","fetched_at":"2026-11-26T09:00:00Z"}` + "\n" + string(good)},
		{"no fetch time", `{"market":"spot"}` + "\n" + string(good)},
		{"truncated body", `{"market":"spot","fetched_at":"2026-11-26T09:00:00Z"}` + "\n" + string(good[:len(good)/2])},
		{"html body", `{"market":"spot","fetched_at":"2026-11-26T09:00:00Z"}` + "\n<html></html>"},
	} {
		t.Run(tt.name, func(t *testing.T) {
			if err := os.WriteFile(filepath.Join(dir, "spot.json"), []byte(tt.content), 0o644); err != nil {
				t.Fatal(err)
			}
			if s, err := st.Load(exchangeinfo.Spot); s != nil || err == nil {
				t.Errorf("Load(%s) = %v, %v; want an error", tt.name, s, err)
			}
		})
	}
}

func TestNew_Rejects(t *testing.T) {
	file := filepath.Join(t.TempDir(), "a-file")
	os.WriteFile(file, nil, 0o644)
	for _, dir := range []string{"", filepath.Join(file, "sub")} {
		if _, err := disk.New(dir); err == nil {
			t.Errorf("New(%q) = nil error, want an error", dir)
		}
	}
}
