-- Values and orders follow their patient (issue 17): found by the EMPI id of their patient copy.
CREATE INDEX order_info_empi ON order_info ((patient ->> 'empi_id'));
CREATE INDEX critical_value_empi ON critical_value ((patient ->> 'empi_id'));
