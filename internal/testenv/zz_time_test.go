package testenv

import (
	"database/sql"
	"testing"
	"time"
)

func TestZZTime(t *testing.T) {
	m := func(url string) error {
		db, _ := sql.Open("postgres", url)
		defer db.Close()
		_, err := db.Exec(`CREATE TABLE widgets (id int)`)
		return err
	}
	Postgres(t, m)
	for i := range 4 {
		start := time.Now()
		err := pg.exec("CREATE DATABASE zz" + string(rune('a'+i)) + " TEMPLATE " + pg.tplName)
		t.Logf("tpl %v %v", time.Since(start), err)
	}
	for i := range 3 {
		start := time.Now()
		err := pg.exec("CREATE DATABASE zy" + string(rune('a'+i)))
		t.Logf("template1 %v %v", time.Since(start), err)
	}
	for range 3 {
		start := time.Now()
		err := pg.exec("SELECT 1")
		t.Logf("select %v %v", time.Since(start), err)
	}
}
