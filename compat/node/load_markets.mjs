// load_markets.mjs: ccxt's binance, with default options, loads its markets
// from one base URL, and prints what it loaded as one line of JSON.
//
//   COMPAT_BASE_URL=http://127.0.0.1:8080 COMPAT_API_KEY=... COMPAT_API_SECRET=... node load_markets.mjs
//
// Every entry of exchange.urls.api is pointed at COMPAT_BASE_URL, keeping its
// path: https://api.binance.com/api/v3 becomes BASE/api/v3,
// https://fapi.binance.com/fapi/v1 BASE/fapi/v1, and so on. urls.test and
// urls.demo are left alone: only sandbox and demo mode use them.
//
// The output: {"markets": count, "markets_sha256": of the markets as JSON
// with sorted keys, "symbols": [...], "currencies": count,
// "currencies_sha256", "urls": {name: rewritten URL}}. Any failure is one
// line on stderr and exit status 1.
//
// With the argument --error-json, a loadMarkets that rejects is printed
// instead, and the exit status is 0: {"error": {"class": the error's
// constructor's name, "message", "instanceof": {ccxt class name: bool}}},
// for the error classes a caller branches on.
import { createHash } from 'node:crypto'
import ccxt from 'ccxt'

const base = process.env.COMPAT_BASE_URL
if (!base) {
    console.error('load_markets.mjs: COMPAT_BASE_URL is not set')
    process.exit(2)
}

// canonical is JSON.stringify with every object's keys sorted.
function canonical (v) {
    if (Array.isArray(v)) {
        return '[' + v.map((x) => (x === undefined ? 'null' : canonical(x))).join(',') + ']'
    }
    if (v !== null && typeof v === 'object') {
        const keys = Object.keys(v).filter((k) => v[k] !== undefined && typeof v[k] !== 'function').sort()
        return '{' + keys.map((k) => JSON.stringify(k) + ':' + canonical(v[k])).join(',') + '}'
    }
    const s = JSON.stringify(v)
    return s === undefined ? 'null' : s
}

const sha256 = (s) => createHash('sha256').update(s).digest('hex')

// errorClasses are the ccxt error classes the --error-json output tests
// the error against: from the most specific to the base.
const errorClasses = ['RequestTimeout', 'ExchangeNotAvailable', 'DDoSProtection', 'NetworkError', 'BadRequest', 'ExchangeError', 'BaseError']

const exchange = new ccxt.binance({
    apiKey: process.env.COMPAT_API_KEY,
    secret: process.env.COMPAT_API_SECRET,
})
const urls = {}
for (const [name, url] of Object.entries(exchange.urls.api)) {
    const u = new URL(url)
    exchange.urls.api[name] = base.replace(/\/+$/, '') + u.pathname.replace(/\/+$/, '')
    urls[name] = exchange.urls.api[name]
}

try {
    const markets = await exchange.loadMarkets()
    const currencies = exchange.currencies || {}
    console.log(JSON.stringify({
        markets: Object.keys(markets).length,
        markets_sha256: sha256(canonical(markets)),
        symbols: Object.keys(markets).sort(),
        currencies: Object.keys(currencies).length,
        currencies_sha256: sha256(canonical(currencies)),
        urls,
    }))
} catch (e) {
    if (process.argv.includes('--error-json')) {
        const is = Object.fromEntries(errorClasses.map((name) => [name, e instanceof ccxt[name]]))
        console.log(JSON.stringify({ error: { class: e.constructor.name, message: e.message, instanceof: is } }))
        process.exit(0)
    }
    console.error(`load_markets.mjs: loadMarkets: ${e.constructor.name}: ${e.message}`)
    process.exit(1)
}
