package rules_test

import (
	"fmt"
	"log"
	"os"
	"time"

	"github.com/symcache/symcache/exchangeinfo"
	"github.com/symcache/symcache/rules"
)

// A bot wants to buy 0.001239 BTC at 27123.456 USDT on spot BTCUSDT. The
// price goes down to the 0.01 tick (a buyer never pays more than asked), the
// quantity down to the 0.00001 step, and every filter passes.
func ExampleRules_Normalize() {
	// The recorded spot answer (an Example has no testing.TB for
	// fixtures.Read, so it reads the file itself).
	body, err := os.ReadFile("../testdata/binance/spot_exchangeinfo.json")
	if err != nil {
		log.Fatal(err)
	}
	snap, err := exchangeinfo.Parse(exchangeinfo.Spot, body, time.Now())
	if err != nil {
		log.Fatal(err)
	}
	sym, _ := snap.Lookup("BTCUSDT")
	r, err := rules.For(exchangeinfo.Spot, sym)
	if err != nil {
		log.Fatal(err)
	}
	fmt.Println("tickSize", r.TickSize, "stepSize", r.StepSize, "minNotional", r.MinNotional)

	n, err := r.Normalize(rules.Order{Price: "27123.456", Quantity: "0.001239", Side: rules.Buy})
	if err != nil {
		log.Fatal(err)
	}
	fmt.Println("price", n.Price, "quantity", n.Quantity, "notional", n.Notional, "ok", n.OK)

	// Too small: 0.00016 BTC is worth 4.34 USDT, under the 5 USDT minimum.
	n, _ = r.Normalize(rules.Order{Price: "27123.45", Quantity: "0.00016", Side: rules.Buy})
	for _, c := range n.Checks {
		if c.Reason == "" {
			fmt.Println(c.Filter, "ok:", c.OK)
		} else {
			fmt.Println(c.Filter, "ok:", c.OK, c.Reason)
		}
	}
	// Output:
	// tickSize 0.01000000 stepSize 0.00001000 minNotional 5.00000000
	// price 27123.45 quantity 0.00123 notional 33.3618435 ok true
	// PRICE_FILTER ok: true
	// LOT_SIZE ok: true
	// NOTIONAL ok: false notional 4.339752 is below the minimum 5.00000000
}
