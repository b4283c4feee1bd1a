-- An order cancelled while its modality performs it (MPPS IN PROGRESS): the step is the modality's to
-- finish and stays as it is; when the cancel came is recorded on it, so staff see it and nothing is erased.
ALTER TABLE scheduled_procedure_steps ADD COLUMN order_cancelled_at timestamptz;
