module github.com/parleyuc/parley

go 1.26
