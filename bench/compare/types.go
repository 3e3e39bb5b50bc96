package compare

// ExchangeInfo is the whole answer of Binance's exchangeInfo endpoints, for
// spot (/api/v3/exchangeInfo), USD-M (/fapi/v1/exchangeInfo) and COIN-M
// (/dapi/v1/exchangeInfo) alike: the union of their fields. A field a market
// does not send stays zero.
//
// Scalars are tagged omitempty so that encoding the union does not write
// every other market's fields as zeros; slices are not, so that an empty
// array ("exchangeFilters":[]) survives a round trip as an empty, non-nil
// slice.
type ExchangeInfo struct {
	Timezone        string      `json:"timezone,omitempty"`
	ServerTime      int64       `json:"serverTime,omitempty"`
	FuturesType     string      `json:"futuresType,omitempty"` // USD-M: "U_MARGINED"
	RateLimits      []RateLimit `json:"rateLimits"`
	ExchangeFilters []Filter    `json:"exchangeFilters"`
	Assets          []Asset     `json:"assets"` // USD-M only
	Sors            []SOR       `json:"sors"`   // spot, when smart order routing is listed
	Symbols         []Symbol    `json:"symbols"`
}

// RateLimit is one entry of rateLimits (and of a symbol's rate limits).
type RateLimit struct {
	RateLimitType string `json:"rateLimitType,omitempty"`
	Interval      string `json:"interval,omitempty"`
	IntervalNum   int64  `json:"intervalNum,omitempty"`
	Limit         int64  `json:"limit,omitempty"`
}

// Asset is one entry of USD-M's assets.
type Asset struct {
	Asset             string `json:"asset,omitempty"`
	MarginAvailable   bool   `json:"marginAvailable,omitempty"`
	AutoAssetExchange string `json:"autoAssetExchange,omitempty"`
}

// SOR is one entry of spot's sors.
type SOR struct {
	BaseAsset string   `json:"baseAsset,omitempty"`
	Symbols   []string `json:"symbols"`
}

// Symbol is one entry of symbols: the union of the spot and futures fields.
type Symbol struct {
	Symbol string `json:"symbol,omitempty"`
	Status string `json:"status,omitempty"` // spot and USD-M

	// Futures.
	Pair                  string   `json:"pair,omitempty"`
	ContractType          string   `json:"contractType,omitempty"`
	DeliveryDate          int64    `json:"deliveryDate,omitempty"`
	OnboardDate           int64    `json:"onboardDate,omitempty"`
	ContractStatus        string   `json:"contractStatus,omitempty"` // COIN-M's status
	ContractSize          int64    `json:"contractSize,omitempty"`   // COIN-M
	MaintMarginPercent    string   `json:"maintMarginPercent,omitempty"`
	RequiredMarginPercent string   `json:"requiredMarginPercent,omitempty"`
	MarginAsset           string   `json:"marginAsset,omitempty"`
	PricePrecision        int64    `json:"pricePrecision,omitempty"`
	QuantityPrecision     int64    `json:"quantityPrecision,omitempty"`
	EqualQtyPrecision     int64    `json:"equalQtyPrecision,omitempty"` // COIN-M
	UnderlyingType        string   `json:"underlyingType,omitempty"`
	UnderlyingSubType     []string `json:"underlyingSubType"`
	SettlePlan            int64    `json:"settlePlan,omitempty"`
	TriggerProtect        string   `json:"triggerProtect,omitempty"`
	LiquidationFee        string   `json:"liquidationFee,omitempty"`
	MarketTakeBound       string   `json:"marketTakeBound,omitempty"`
	MaxMoveOrderLimit     int64    `json:"maxMoveOrderLimit,omitempty"`
	TimeInForce           []string `json:"timeInForce"`

	// Both.
	BaseAsset           string   `json:"baseAsset,omitempty"`
	BaseAssetPrecision  int64    `json:"baseAssetPrecision,omitempty"`
	QuoteAsset          string   `json:"quoteAsset,omitempty"`
	QuotePrecision      int64    `json:"quotePrecision,omitempty"`
	QuoteAssetPrecision int64    `json:"quoteAssetPrecision,omitempty"` // spot
	OrderTypes          []string `json:"orderTypes"`
	Filters             []Filter `json:"filters"`

	// Spot.
	BaseCommissionPrecision         int64    `json:"baseCommissionPrecision,omitempty"`
	QuoteCommissionPrecision        int64    `json:"quoteCommissionPrecision,omitempty"`
	IcebergAllowed                  bool     `json:"icebergAllowed,omitempty"`
	OcoAllowed                      bool     `json:"ocoAllowed,omitempty"`
	OtoAllowed                      bool     `json:"otoAllowed,omitempty"`
	OpoAllowed                      bool     `json:"opoAllowed,omitempty"`
	QuoteOrderQtyMarketAllowed      bool     `json:"quoteOrderQtyMarketAllowed,omitempty"`
	AllowTrailingStop               bool     `json:"allowTrailingStop,omitempty"`
	CancelReplaceAllowed            bool     `json:"cancelReplaceAllowed,omitempty"`
	AmendAllowed                    bool     `json:"amendAllowed,omitempty"`
	PegInstructionsAllowed          bool     `json:"pegInstructionsAllowed,omitempty"`
	IsSpotTradingAllowed            bool     `json:"isSpotTradingAllowed,omitempty"`
	IsMarginTradingAllowed          bool     `json:"isMarginTradingAllowed,omitempty"`
	Permissions                     []string `json:"permissions"`
	DefaultSelfTradePreventionMode  string   `json:"defaultSelfTradePreventionMode,omitempty"`
	AllowedSelfTradePreventionModes []string `json:"allowedSelfTradePreventionModes"`

	// PermissionSets is a list of lists of permissions on spot
	// ([["SPOT","MARGIN"]]) but a flat list on USD-M (["GRID","COPY"]), so
	// no one Go slice type holds both: it decodes as []any.
	PermissionSets any `json:"permissionSets"`
}

// Filter is one entry of a symbol's filters or of exchangeFilters: the union
// of the fields of every filterType of spot and futures.
type Filter struct {
	FilterType string `json:"filterType,omitempty"`

	// PRICE_FILTER.
	MinPrice string `json:"minPrice,omitempty"`
	MaxPrice string `json:"maxPrice,omitempty"`
	TickSize string `json:"tickSize,omitempty"`

	// LOT_SIZE, MARKET_LOT_SIZE.
	MinQty   string `json:"minQty,omitempty"`
	MaxQty   string `json:"maxQty,omitempty"`
	StepSize string `json:"stepSize,omitempty"`

	// ICEBERG_PARTS, futures MAX_NUM_ORDERS and MAX_NUM_ALGO_ORDERS.
	Limit int64 `json:"limit,omitempty"`

	// TRAILING_DELTA.
	MinTrailingAboveDelta int64 `json:"minTrailingAboveDelta,omitempty"`
	MaxTrailingAboveDelta int64 `json:"maxTrailingAboveDelta,omitempty"`
	MinTrailingBelowDelta int64 `json:"minTrailingBelowDelta,omitempty"`
	MaxTrailingBelowDelta int64 `json:"maxTrailingBelowDelta,omitempty"`

	// PERCENT_PRICE_BY_SIDE (spot), PERCENT_PRICE (spot and futures).
	BidMultiplierUp   string `json:"bidMultiplierUp,omitempty"`
	BidMultiplierDown string `json:"bidMultiplierDown,omitempty"`
	AskMultiplierUp   string `json:"askMultiplierUp,omitempty"`
	AskMultiplierDown string `json:"askMultiplierDown,omitempty"`
	MultiplierUp      string `json:"multiplierUp,omitempty"`
	MultiplierDown    string `json:"multiplierDown,omitempty"`
	MultiplierDecimal string `json:"multiplierDecimal,omitempty"` // futures: a string
	AvgPriceMins      int64  `json:"avgPriceMins,omitempty"`

	// NOTIONAL, MIN_NOTIONAL (spot); MIN_NOTIONAL's notional (futures).
	MinNotional      string `json:"minNotional,omitempty"`
	ApplyMinToMarket bool   `json:"applyMinToMarket,omitempty"`
	MaxNotional      string `json:"maxNotional,omitempty"`
	ApplyMaxToMarket bool   `json:"applyMaxToMarket,omitempty"`
	ApplyToMarket    bool   `json:"applyToMarket,omitempty"`
	Notional         string `json:"notional,omitempty"`

	// MAX_NUM_ORDERS, MAX_NUM_ALGO_ORDERS, MAX_NUM_ICEBERG_ORDERS,
	// MAX_NUM_ORDER_AMENDS, MAX_NUM_ORDER_LISTS (spot; exchange filters too).
	MaxNumOrders        int64 `json:"maxNumOrders,omitempty"`
	MaxNumAlgoOrders    int64 `json:"maxNumAlgoOrders,omitempty"`
	MaxNumIcebergOrders int64 `json:"maxNumIcebergOrders,omitempty"`
	MaxNumOrderAmends   int64 `json:"maxNumOrderAmends,omitempty"`
	MaxNumOrderLists    int64 `json:"maxNumOrderLists,omitempty"`

	// MAX_POSITION (spot).
	MaxPosition string `json:"maxPosition,omitempty"`

	// POSITION_RISK_CONTROL (USD-M).
	PositionControlSide string `json:"positionControlSide,omitempty"`
}
