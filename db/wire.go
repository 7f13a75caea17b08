package db

import "time"

// The wire vocabulary: a counter and its days as JSON, the same in the
// JSON API (web) and in the owner's CLI (owner), so a name means one thing
// wherever it is read.

// CountsJSON is a counter as JSON.
type CountsJSON struct {
	Name          string    `json:"name"`
	Total         int64     `json:"total"`
	Day           string    `json:"day"` // the day of the *_today figures, YYYY-MM-DD
	ViewsToday    int64     `json:"views_today"`
	VisitorsToday int64     `json:"visitors_today"`
	BotsToday     int64     `json:"bots_today"`
	FilteredToday int64     `json:"filtered_today"`
	Updated       time.Time `json:"updated"` // UTC
}

// JSON is c on the wire.
func (c Counts) JSON() CountsJSON {
	return CountsJSON{Name: c.Name, Total: c.Total, Day: c.Day.Format(time.DateOnly),
		ViewsToday: c.Views, VisitorsToday: c.Visitors, BotsToday: c.Bots, FilteredToday: c.Filtered,
		Updated: c.Updated.UTC()}
}

// DayJSON is a day's row as JSON.
type DayJSON struct {
	Day      string `json:"day"` // YYYY-MM-DD
	Views    int64  `json:"views"`
	Visitors int64  `json:"visitors"`
	Bots     int64  `json:"bots"`
	Filtered int64  `json:"filtered"`
}

// JSON is d on the wire.
func (d Day) JSON() DayJSON {
	return DayJSON{Day: d.Day.Format(time.DateOnly), Views: d.Views, Visitors: d.Visitors, Bots: d.Bots, Filtered: d.Filtered}
}
