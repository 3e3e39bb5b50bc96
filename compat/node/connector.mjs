// connector.mjs: @binance/connector's Spot, with one base URL, makes the
// calls given as its argument, one after the other, and prints what each
// returned as one line of JSON.
//
//   COMPAT_BASE_URL=http://127.0.0.1:8080 COMPAT_API_KEY=... COMPAT_API_SECRET=... \
//     node connector.mjs '[["exchangeInfo"], ["openOrders"]]'
//
// The argument is a JSON array of calls, each a method of Spot followed by
// its arguments: ["newOrder", "BTCUSDT", "BUY", "LIMIT", {"price": "27123.45"}].
// The client is new Spot(COMPAT_API_KEY, COMPAT_API_SECRET, {baseURL}), as
// an application creates it; the connector returns axios' response.
//
// The output is an array with one entry per call:
//   {"status", "headers": {lower-case name: value, a string}, "sent": the
//    path and query the request went out with, "data": the decoded body}
// when the call resolved, and when it rejected
//   {"error": {"class", "name", "code", "is_axios_error",
//    "instanceof_axios_error", "message", "status", "headers", "sent",
//    "data"}} (the last four from axios' error.response and error.request,
//    when there is one).
// A failure of the script itself is one line on stderr and exit status 1.
import { createRequire } from 'node:module'
import connector from '@binance/connector'

// The axios the connector itself requires (CommonJS), so that instanceof
// compares with the class its errors are made of.
const axios = createRequire(import.meta.url)('axios')

const base = process.env.COMPAT_BASE_URL
if (!base || process.argv.length !== 3) {
    console.error('connector.mjs: want COMPAT_BASE_URL set and one argument, a JSON array of calls')
    process.exit(2)
}
const calls = JSON.parse(process.argv[2])

const client = new connector.Spot(process.env.COMPAT_API_KEY, process.env.COMPAT_API_SECRET, { baseURL: base })

const out = []
for (const [method, ...args] of calls) {
    if (typeof client[method] !== 'function') {
        console.error(`connector.mjs: Spot has no method ${method}`)
        process.exit(1)
    }
    try {
        const res = await client[method](...args)
        out.push({ status: res.status, headers: res.headers.toJSON(true), sent: res.request?.path, data: res.data })
    } catch (e) {
        out.push({
            error: {
                class: e.constructor.name,
                name: e.name,
                code: e.code,
                is_axios_error: axios.isAxiosError(e),
                instanceof_axios_error: e instanceof axios.AxiosError,
                message: e.message,
                status: e.response?.status,
                headers: e.response?.headers?.toJSON(true),
                sent: e.request?.path,
                data: e.response?.data,
            },
        })
    }
}
console.log(JSON.stringify(out))
