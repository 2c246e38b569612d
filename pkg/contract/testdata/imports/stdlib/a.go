package stdlib

import (
	"fmt"
	"time"

	"github.com/faceharvest/faceharvest/pkg/clock"
)

var _ = fmt.Sprint(time.Second, clock.Real())
