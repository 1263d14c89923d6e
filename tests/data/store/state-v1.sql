BEGIN TRANSACTION;
CREATE TABLE id_ledger (
	"key" VARCHAR NOT NULL, 
	entry_id VARCHAR NOT NULL, 
	PRIMARY KEY ("key")
);
INSERT INTO "id_ledger" VALUES('key:n1','urn:uuid:1');
INSERT INTO "id_ledger" VALUES('path:posts/a.md','urn:uuid:1');
INSERT INTO "id_ledger" VALUES('link:https://x.example/1','https://x.example/1');
CREATE TABLE items (
	source VARCHAR NOT NULL, 
	ukey VARCHAR NOT NULL, 
	entry_id VARCHAR NOT NULL, 
	link VARCHAR, 
	published FLOAT NOT NULL, 
	updated FLOAT NOT NULL, 
	tags TEXT NOT NULL, 
	data TEXT NOT NULL, 
	digest VARCHAR NOT NULL, 
	first_seen FLOAT NOT NULL, 
	last_seen FLOAT NOT NULL, 
	PRIMARY KEY (source, ukey)
);
INSERT INTO "items" VALUES('wire','guid:1','https://wire.example/1','https://wire.example/1',1709296200.0,1709296200.0,'["news", "世界"]','{"authors": [["Wire", null, "https://wire.example/"]], "categories": [], "content": "<p>x</p>", "enclosures": [["https://wire.example/a.mp3", "audio/mpeg", 1234]], "id": "https://wire.example/1", "image": null, "language": "en", "link": "https://wire.example/1", "provenance": [["wire", null, "guid-1", "Wire", "https://wire.example/", "urn:wire", 1709296200.0, "https://wire.example/feed.xml"]], "published": 1709296200.0, "summary": "Sum", "tags": ["news", "世界"], "title": "One", "updated": 1709296200.0}','dg1',1000.0,2000.0);
INSERT INTO "items" VALUES('wire','guid:2','https://wire.example/guid:2','https://wire.example/guid:2',1709296200.0,1709296200.0,'["t"]','{"authors": [], "categories": [], "content": null, "enclosures": [], "id": "https://wire.example/guid:2", "image": null, "language": null, "link": "https://wire.example/guid:2", "provenance": [], "published": 1709296200.0, "summary": "", "tags": ["t"], "title": "guid:2", "updated": 1709296200.0}','dg',1000.0,1500.0);
CREATE TABLE outputs (
	path VARCHAR NOT NULL, 
	signature VARCHAR NOT NULL, 
	size BIGINT NOT NULL, 
	mtime_ns BIGINT NOT NULL, 
	PRIMARY KEY (path)
);
INSERT INTO "outputs" VALUES('all.atom.xml','sig',100,1700000000123456789);
INSERT INTO "outputs" VALUES('tag/été.rss.xml','sig2',5,6);
CREATE TABLE post_cache (
	path VARCHAR NOT NULL, 
	mtime_ns BIGINT NOT NULL, 
	size BIGINT NOT NULL, 
	fingerprint VARCHAR NOT NULL, 
	meta TEXT, 
	problem TEXT, 
	PRIMARY KEY (path)
);
INSERT INTO "post_cache" VALUES('posts/a.md',1700000000000000000,120,'fp','{"path": "posts/a.md", "digest": "dddddddddddddddddddddddddddddddddddddddd", "title": "Été à Paris", "published": "2024-03-01T12:30:00+00:00", "updated": "2024-03-01T13:30:00+00:00", "explicit_id": null, "link": "https://example.org/a", "permalink": "https://example.org/posts/a/", "authors": [["Anne", "anne@example.org", null]], "tags": ["voyage", "été"], "categories": ["Blog"], "summary": null, "language": "fr", "image": null, "body_line": 7}',NULL);
INSERT INTO "post_cache" VALUES('posts/b.md',2,20,'fp',NULL,'posts/b.md:1: no title');
INSERT INTO "post_cache" VALUES('posts/c.md',3,30,'fp',NULL,'');
CREATE TABLE post_content (
	path VARCHAR NOT NULL, 
	digest VARCHAR NOT NULL, 
	fingerprint VARCHAR NOT NULL, 
	content TEXT NOT NULL, 
	summary TEXT NOT NULL, 
	PRIMARY KEY (path)
);
INSERT INTO "post_content" VALUES('posts/a.md','d1','cfp','<p>été</p>','été');
CREATE TABLE settings (
	"key" VARCHAR NOT NULL, 
	value VARCHAR NOT NULL, 
	PRIMARY KEY ("key")
);
INSERT INTO "settings" VALUES('schema_version','1');
INSERT INTO "settings" VALUES('items_version','random');
INSERT INTO "settings" VALUES('last_run','{"snapshot": "abc", "outputs": 2, "feeds": 1, "posts": 3, "drafts": 1, "entries": 4, "warnings": ["posts/b.md:1: no title"]}');
INSERT INTO "settings" VALUES('post_inputs','{"posts": 3}');
INSERT INTO "settings" VALUES('health','{"other:error": "2024-03-01T12:30:00+00:00"}');
INSERT INTO "settings" VALUES('output_dir','/srv/feeds');
CREATE TABLE sources (
	name VARCHAR NOT NULL, 
	url VARCHAR NOT NULL, 
	fetch_url VARCHAR NOT NULL, 
	etag VARCHAR, 
	last_modified VARCHAR, 
	body_hash VARCHAR, 
	last_fetch FLOAT, 
	last_success FLOAT, 
	status VARCHAR NOT NULL, 
	error TEXT, 
	failures INTEGER NOT NULL, 
	next_due FLOAT, 
	moved_to VARCHAR, 
	moved_seen INTEGER NOT NULL, 
	id_mode VARCHAR, 
	entries INTEGER NOT NULL, 
	PRIMARY KEY (name)
);
INSERT INTO "sources" VALUES('wire','https://wire.example/feed.xml','https://wire.example/feed.xml','"abc"','Fri, 01 Mar 2024 12:00:00 GMT','bbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbb',1709296200.0,1709296200.0,'ok',NULL,0,1709303400.0,NULL,0,'guid',1);
INSERT INTO "sources" VALUES('other','https://other.example/feed.xml','https://other.example/feed.xml','"abc"','Fri, 01 Mar 2024 12:00:00 GMT','bbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbb',NULL,1709296200.0,'error','HTTP 500',2,1709303400.0,NULL,0,'guid',1);
CREATE INDEX ix_items_entry_id ON items (entry_id);
COMMIT;
