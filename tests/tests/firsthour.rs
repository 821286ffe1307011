//! A Docker user's first hour: usage errors, habits that tripped, and the verbs users reach for first.

mod common;
