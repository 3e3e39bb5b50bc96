package fetchtest

// ExchangeInfo is Binance's whole exchangeInfo answer as typed structs: every
// field of the recorded spot, USD-M and COIN-M answers, filters included. It
// is the baseline of the benchmarks, encoding/json decoding (or encoding)
// everything, which symcache's own code must beat; symcache never decodes an
// answer into it.
type ExchangeInfo struct {
	Timezone        string      `json:"timezone"`
	ServerTime      int64       `json:"serverTime"`
	FuturesType     string      `json:"futuresType,omitempty"`
	RateLimits      []RateLimit `json:"rateLimits"`
	ExchangeFilters []Filter    `json:"exchangeFilters"`
	Assets          []Asset     `json:"assets,omitempty"`
	Symbols         []Symbol    `json:"symbols"`
}

// RateLimit is one entry of rateLimits.
type RateLimit struct {
	RateLimitType string `json:"rateLimitType"`
	Interval      string `json:"interval"`
	IntervalNum   int    `json:"intervalNum"`
	Limit         int    `json:"limit"`
}

// Asset is one entry of USD-M's assets.
type Asset struct {
	Asset             string `json:"asset"`
	MarginAvailable   bool   `json:"marginAvailable"`
	AutoAssetExchange string `json:"autoAssetExchange"`
}

// Symbol is one entry of symbols, spot and futures fields together.
type Symbol struct {
	Symbol                          string   `json:"symbol"`
	Pair                            string   `json:"pair,omitempty"`
	ContractType                    string   `json:"contractType,omitempty"`
	DeliveryDate                    int64    `json:"deliveryDate,omitempty"`
	OnboardDate                     int64    `json:"onboardDate,omitempty"`
	Status                          string   `json:"status,omitempty"`
	ContractStatus                  string   `json:"contractStatus,omitempty"`
	ContractSize                    int      `json:"contractSize,omitempty"`
	MaintMarginPercent              string   `json:"maintMarginPercent,omitempty"`
	RequiredMarginPercent           string   `json:"requiredMarginPercent,omitempty"`
	BaseAsset                       string   `json:"baseAsset"`
	BaseAssetPrecision              int      `json:"baseAssetPrecision"`
	QuoteAsset                      string   `json:"quoteAsset"`
	MarginAsset                     string   `json:"marginAsset,omitempty"`
	PricePrecision                  int      `json:"pricePrecision,omitempty"`
	QuantityPrecision               int      `json:"quantityPrecision,omitempty"`
	QuotePrecision                  int      `json:"quotePrecision"`
	QuoteAssetPrecision             int      `json:"quoteAssetPrecision,omitempty"`
	BaseCommissionPrecision         int      `json:"baseCommissionPrecision,omitempty"`
	QuoteCommissionPrecision        int      `json:"quoteCommissionPrecision,omitempty"`
	EqualQtyPrecision               int      `json:"equalQtyPrecision,omitempty"`
	UnderlyingType                  string   `json:"underlyingType,omitempty"`
	UnderlyingSubType               []string `json:"underlyingSubType,omitempty"`
	TriggerProtect                  string   `json:"triggerProtect,omitempty"`
	LiquidationFee                  string   `json:"liquidationFee,omitempty"`
	MarketTakeBound                 string   `json:"marketTakeBound,omitempty"`
	MaxMoveOrderLimit               int      `json:"maxMoveOrderLimit,omitempty"`
	OrderTypes                      []string `json:"orderTypes"`
	TimeInForce                     []string `json:"timeInForce,omitempty"`
	IcebergAllowed                  bool     `json:"icebergAllowed,omitempty"`
	OcoAllowed                      bool     `json:"ocoAllowed,omitempty"`
	OtoAllowed                      bool     `json:"otoAllowed,omitempty"`
	QuoteOrderQtyMarketAllowed      bool     `json:"quoteOrderQtyMarketAllowed,omitempty"`
	AllowTrailingStop               bool     `json:"allowTrailingStop,omitempty"`
	CancelReplaceAllowed            bool     `json:"cancelReplaceAllowed,omitempty"`
	AmendAllowed                    bool     `json:"amendAllowed,omitempty"`
	IsSpotTradingAllowed            bool     `json:"isSpotTradingAllowed,omitempty"`
	IsMarginTradingAllowed          bool     `json:"isMarginTradingAllowed,omitempty"`
	Filters                         []Filter `json:"filters"`
	Permissions                     []string `json:"permissions,omitempty"`
	PermissionSets                  any      `json:"permissionSets,omitempty"` // spot: [][]string; USD-M: []string
	DefaultSelfTradePreventionMode  string   `json:"defaultSelfTradePreventionMode,omitempty"`
	AllowedSelfTradePreventionModes []string `json:"allowedSelfTradePreventionModes,omitempty"`
}

// Filter is one entry of filters or exchangeFilters: the union of every
// filter type's fields.
type Filter struct {
	FilterType            string `json:"filterType"`
	MinPrice              string `json:"minPrice,omitempty"`
	MaxPrice              string `json:"maxPrice,omitempty"`
	TickSize              string `json:"tickSize,omitempty"`
	MinQty                string `json:"minQty,omitempty"`
	MaxQty                string `json:"maxQty,omitempty"`
	StepSize              string `json:"stepSize,omitempty"`
	Limit                 int    `json:"limit,omitempty"`
	Notional              string `json:"notional,omitempty"`
	MultiplierUp          string `json:"multiplierUp,omitempty"`
	MultiplierDown        string `json:"multiplierDown,omitempty"`
	MultiplierDecimal     string `json:"multiplierDecimal,omitempty"`
	PositionControlSide   string `json:"positionControlSide,omitempty"`
	MinTrailingAboveDelta int    `json:"minTrailingAboveDelta,omitempty"`
	MaxTrailingAboveDelta int    `json:"maxTrailingAboveDelta,omitempty"`
	MinTrailingBelowDelta int    `json:"minTrailingBelowDelta,omitempty"`
	MaxTrailingBelowDelta int    `json:"maxTrailingBelowDelta,omitempty"`
	BidMultiplierUp       string `json:"bidMultiplierUp,omitempty"`
	BidMultiplierDown     string `json:"bidMultiplierDown,omitempty"`
	AskMultiplierUp       string `json:"askMultiplierUp,omitempty"`
	AskMultiplierDown     string `json:"askMultiplierDown,omitempty"`
	AvgPriceMins          int    `json:"avgPriceMins,omitempty"`
	MinNotional           string `json:"minNotional,omitempty"`
	ApplyMinToMarket      bool   `json:"applyMinToMarket,omitempty"`
	MaxNotional           string `json:"maxNotional,omitempty"`
	ApplyMaxToMarket      bool   `json:"applyMaxToMarket,omitempty"`
	MaxNumOrders          int    `json:"maxNumOrders,omitempty"`
	MaxNumAlgoOrders      int    `json:"maxNumAlgoOrders,omitempty"`
	MaxNumIcebergOrders   int    `json:"maxNumIcebergOrders,omitempty"`
	MaxPosition           string `json:"maxPosition,omitempty"`
}
