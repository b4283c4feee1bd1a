"""Registration: Front desk: patients, EMPI, orders, HIS feed, staff identity."""
