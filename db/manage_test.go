package db

import (
	"errors"
	"strings"
	"testing"
	"time"
)

// CheckDays is the store's rule for imported days, whoever calls Import.
func TestCheckDays(t *testing.T) {
	t.Parallel()
	day := func(n int) time.Time { return time.Date(2024, 3, n, 0, 0, 0, 0, time.UTC) }
	for _, tt := range []struct {
		name string
		days []Day
		want string // "" for allowed
	}{
		{"none", nil, ""},
		{"every figure", []Day{{Day: day(1), Views: 10, Visitors: 4, Bots: 2, Filtered: 1}, {Day: day(2), Views: 7, Visitors: 7}}, ""},
		{"the bound", []Day{{Day: day(1), Views: MaxTotal, Visitors: MaxTotal, Bots: MaxTotal, Filtered: MaxTotal}}, ""},
		{"a day twice", []Day{{Day: day(1), Views: 1}, {Day: day(1), Views: 2}}, "day 2024-03-01: invalid input: given twice"},
		{"negative", []Day{{Day: day(1), Bots: -1}}, "day 2024-03-01: invalid input: figures must be between 0 and 9007199254740991"},
		{"past the bound", []Day{{Day: day(1), Filtered: MaxTotal + 1}}, "figures must be between 0 and 9007199254740991"},
		{"views adding up past the bound", []Day{{Day: day(1), Views: MaxTotal}, {Day: day(2), Views: 1, Visitors: 1}}, "day 2024-03-02: invalid input: the days' views add up to more than 9007199254740991"},
		// Issue 19: visitors are the distinct viewers among the day's views.
		{"visitors past views", []Day{{Day: day(1), Views: 5, Visitors: 5}, {Day: day(2), Views: 3, Visitors: 4}}, "day 2024-03-02: invalid input: 4 visitors, more than its 3 views"},
		{"visitors without views", []Day{{Day: day(1), Visitors: 1, Bots: 9}}, "day 2024-03-01: invalid input: 1 visitors, more than its 0 views"},
	} {
		err := CheckDays(tt.days)
		switch {
		case tt.want == "" && err != nil:
			t.Errorf("%s: %v, want it allowed", tt.name, err)
		case tt.want == "":
		case !errors.Is(err, ErrInvalid) || !strings.Contains(err.Error(), tt.want):
			t.Errorf("%s: %v, want ErrInvalid mentioning %q", tt.name, err, tt.want)
		}
	}
}
