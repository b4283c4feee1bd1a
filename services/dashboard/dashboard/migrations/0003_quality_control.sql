-- Quality-control programmes (standard 8.1 request QC, 8.2 image QC grades 甲/乙/丙/丁, 8.3 report QC):
-- a sampling plan (a percentage per kind and modality, '*' for any), the exams drawn for review as their
-- events arrive, and the reviews (a first and a second reader).
CREATE TABLE qc_plan (
    kind        text NOT NULL CHECK (kind IN ('image', 'request', 'report')),
    modality    text NOT NULL DEFAULT '*',
    percent     numeric(5, 2) NOT NULL CHECK (percent BETWEEN 0 AND 100),
    updated_by  text NOT NULL,
    updated_at  timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (kind, modality)
);

CREATE TABLE qc_item (
    kind              text NOT NULL CHECK (kind IN ('image', 'request', 'report')),
    accession_number  text NOT NULL,
    modality          text,
    person            text,            -- whose work is reviewed: the modality (image), orderer (request), signer (report)
    drawn_at          timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (kind, accession_number)
);
CREATE INDEX qc_item_drawn ON qc_item (kind, drawn_at);

CREATE TABLE qc_review (
    review_id         bigserial PRIMARY KEY,
    kind              text NOT NULL,
    accession_number  text NOT NULL,
    reader            text NOT NULL CHECK (reader IN ('first', 'second')),
    reviewer          text NOT NULL,
    grade             text CHECK (grade IN ('甲', '乙', '丙', '丁')),
    score             integer CHECK (score BETWEEN 0 AND 100),
    reasons           text[] NOT NULL DEFAULT '{}',
    note              text NOT NULL DEFAULT '',
    reviewed_at       timestamptz NOT NULL DEFAULT now(),
    FOREIGN KEY (kind, accession_number) REFERENCES qc_item (kind, accession_number),
    UNIQUE (kind, accession_number, reader),
    UNIQUE (kind, accession_number, reviewer),
    CHECK (grade IS NOT NULL OR score IS NOT NULL)
);
